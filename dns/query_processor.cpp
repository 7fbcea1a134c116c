#include "dns/query_processor.h"

#include <algorithm>

#include "dns/message_builder.h"
#include "dns/name_classifier.h"
#include "dns/query_parser.h"
#include "dns/responder.h"

namespace dns {

namespace {

// A header-only reply (NOTIMP, FORMERR) for queries we cannot or will not read.
Outcome header_only_response(const Header& query, std::uint16_t code,
                             std::span<std::uint8_t> response) {
  if (response.size() < kHeaderSize) return {};
  std::fill_n(response.begin(), kHeaderSize, std::uint8_t{0});
  store_u16(&response[0], query.id);
  const auto opcode_bits = static_cast<std::uint16_t>(query.flags & 0x7800);
  store_u16(&response[2],
            static_cast<std::uint16_t>(flag::qr | opcode_bits | (query.flags & flag::rd) | code));
  return {.kind = Outcome::Kind::respond, .size = kHeaderSize, .rcode = code};
}

// RFC 6891 section 6.2.5: below 512 means 512; above our maximum means our maximum.
std::size_t response_limit(const Query& query, Transport transport, const Options& options) {
  if (transport == Transport::tcp) return kMaxMessageSize;
  if (!query.edns) return kMinUdpPayload;
  const std::size_t ceiling = std::max<std::size_t>(options.max_udp_payload, kMinUdpPayload);
  return std::clamp<std::size_t>(query.edns->udp_payload, kMinUdpPayload, ceiling);
}

// Query types that only make sense elsewhere: RCODE, or 0 for an ordinary type.
std::uint16_t meta_type_rcode(std::uint16_t qtype) {
  switch (qtype) {
    case rrtype::opt:
    case rrtype::tkey:
    case rrtype::tsig:
      return rcode::formerr;  // RFC 6891 / RFC 8945: not a question
    case rrtype::axfr:
    case rrtype::ixfr:
      return rcode::refused;  // no zone transfers
    case rrtype::maila:
    case rrtype::mailb:
      return rcode::notimp;
    default:
      return 0;
  }
}

// CHAOS-class TXT names that identify the server (RFC 4892 and BIND's names).
std::uint16_t answer_chaos(const Query& query, const Options& options, MessageBuilder& message) {
  static const Name version_bind = *Name::from_text("version.bind.");
  static const Name version_server = *Name::from_text("version.server.");
  static const Name id_server = *Name::from_text("id.server.");
  static const Name hostname_bind = *Name::from_text("hostname.bind.");
  if (query.qtype != rrtype::txt && query.qtype != rrtype::any) return rcode::refused;
  const std::string* text = nullptr;
  if (query.qname == version_bind || query.qname == version_server) text = &options.version_bind;
  if (query.qname == id_server || query.qname == hostname_bind) text = &options.id_server;
  if (text == nullptr || text->empty()) return rcode::refused;
  message.set_flags(flag::aa);
  const bool added = message.add_record(
      Section::answer, Owner::question(), rrtype::txt, rrclass::chaos, 0, [&](MessageBuilder& m) {
        // TXT RDATA is a sequence of character-strings of at most 255 bytes.
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(text->data());
        for (std::size_t at = 0; at < text->size(); at += 255) {
          const std::size_t length = std::min<std::size_t>(255, text->size() - at);
          const std::uint8_t prefix = static_cast<std::uint8_t>(length);
          if (!m.put_bytes({&prefix, 1}) || !m.put_bytes({bytes + at, length})) return false;
        }
        return true;
      });
  if (!added) message.set_flags(flag::tc);
  return rcode::noerror;
}

// Queries answered without looking at the name's place in the zone: 0 when the
// name decides.
std::uint16_t rcode_before_name(const Query& query) {
  if (query.edns && query.edns->version > 0) {
    return rcode::badvers;  // RFC 6891 section 6.1.3: we speak EDNS version 0 only
  }
  if (const std::uint16_t meta = meta_type_rcode(query.qtype); meta != 0) return meta;
  if (query.qclass != rrclass::in && query.qclass != rrclass::chaos) return rcode::refused;
  return 0;
}

}  // namespace

PendingQuery::PendingQuery(const Query& query, const Zone& zone)
    : question_(query.question.begin(), query.question.end()), query_(query) {
  query_.question = question_;
  name_ = classify(query_.qname, zone);
}

QueryProcessor::QueryProcessor(std::shared_ptr<const Zone> zone, store::ServiceLookup& lookup,
                               Options options)
    : zone_(std::move(zone)),
      lookup_(lookup),
      options_(std::move(options)),
      balancer_(std::make_unique<store::lb::Balancer>(options_.lb_seed)) {}

std::size_t QueryProcessor::buffer_size(Transport transport) const {
  if (transport == Transport::tcp) return kMaxMessageSize;
  return std::max<std::size_t>(options_.max_udp_payload, kMinUdpPayload);
}

Outcome QueryProcessor::process(std::span<const std::uint8_t> bytes, Transport transport,
                                std::span<std::uint8_t> response) const {
  Query query;
  switch (parse_query(bytes, query)) {
    case ParseStatus::drop:
      return {.malformed = bytes.size() < kHeaderSize};
    case ParseStatus::not_implemented:
      return header_only_response(query.header, rcode::notimp, response);
    case ParseStatus::format_error: {
      Outcome outcome = header_only_response(query.header, rcode::formerr, response);
      outcome.malformed = true;
      return outcome;
    }
    case ParseStatus::ok:
      break;
  }
  const bool transfer_type = query.qtype == rrtype::axfr || query.qtype == rrtype::ixfr;
  if (transfer_type && options_.zone_transfers && query.qclass == rrclass::in) {
    return {.kind = Outcome::Kind::transfer};
  }
  const std::uint16_t early_code = rcode_before_name(query);
  ClassifiedName name;
  store::ServiceSnapshotPtr snapshot;
  if (early_code == 0 && query.qclass == rrclass::in) {
    name = classify(query.qname, *zone_);
    if (name.needs_service()) {
      snapshot = lookup_.find_cached(name.service);
      if (!snapshot) {
        return {.kind = Outcome::Kind::needs_lookup,
                .pending = std::make_shared<const PendingQuery>(query, *zone_)};
      }
    }
  }
  return answer(query, early_code, name, snapshot.get(), transport, response);
}

Outcome QueryProcessor::resume(const PendingQuery& pending, Transport transport,
                               std::span<std::uint8_t> response,
                               const store::LookupResult& fetched) const {
  const store::ServiceSnapshot* snapshot =
      fetched.ok && fetched.snapshot ? fetched.snapshot.get() : nullptr;
  // Only class IN queries that no header, type or class rule decided wait for
  // a lookup: nothing was decided early.
  return answer(pending.query(), 0, pending.name(), snapshot, transport, response);
}

std::uint16_t QueryProcessor::answer_in(const Query& query, const ClassifiedName& name,
                                        const store::ServiceSnapshot* snapshot,
                                        MessageBuilder& message) const {
  if (name.kind == NameKind::out_of_zone) {
    return rcode::refused;  // not authoritative, not a resolver (RFC 8906 section 3.1.5)
  }
  // No snapshot: the store could not be read (store/lookup.h contract). SERVFAIL
  // is not authoritative, so it is decided before the Responder sets AA.
  if (name.needs_service() && !snapshot) return rcode::servfail;
  Responder responder(*zone_, options_, query, message);
  if (name.needs_service()) return responder.answer_dynamic(name, *snapshot, *balancer_);
  switch (name.kind) {
    case NameKind::static_node:
      return responder.answer_static(*name.node);
    case NameKind::structural:
      return responder.answer_structural();
    default:
      return responder.answer_nonexistent();
  }
}

Outcome QueryProcessor::answer(const Query& query, std::uint16_t early_code,
                               const ClassifiedName& name, const store::ServiceSnapshot* snapshot,
                               Transport transport, std::span<std::uint8_t> response) const {
  MessageBuilder message(response, response_limit(query, transport, options_));
  const auto echoed_flags = static_cast<std::uint16_t>(query.header.flags & (flag::rd | flag::cd));
  if (!message.start(query.header.id, flag::qr | echoed_flags, query.question)) {
    return header_only_response(query.header, rcode::formerr, response);
  }
  if (query.edns) message.reserve_opt();

  std::uint16_t code = early_code;
  if (code == 0) {
    code = query.qclass == rrclass::chaos ? answer_chaos(query, options_, message)
                                          : answer_in(query, name, snapshot, message);
  }

  message.set_flags(static_cast<std::uint16_t>(code & 0x0F));
  std::optional<OptRecord> opt;
  if (query.edns) {
    opt = OptRecord{.udp_payload = static_cast<std::uint16_t>(buffer_size(Transport::udp)),
                    .extended_rcode = static_cast<std::uint8_t>(code >> 4),
                    .dnssec_ok = query.edns->dnssec_ok};
  }
  const std::size_t size = message.finish(opt ? &*opt : nullptr);
  return {.kind = Outcome::Kind::respond,
          .size = size,
          .rcode = code,
          .truncated = (message.flags() & flag::tc) != 0};
}

}  // namespace dns
