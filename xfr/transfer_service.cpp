#include "xfr/transfer_service.h"

#include <ctime>

#include "dns/query_parser.h"

namespace xfr {
namespace {

constexpr std::uint16_t kNotAuth = 9;

// The serial of the SOA record an IXFR query carries in its authority section
// (RFC 1995 section 3): the version the client has.
std::optional<std::uint32_t> client_serial(std::span<const std::uint8_t> message,
                                           const dns::Query& query) {
  if (query.header.nscount < 1) return std::nullopt;
  std::size_t at =
      static_cast<std::size_t>(query.question.data() - message.data()) + query.question.size();
  const auto after_owner = dns::read_name(message, at, dns::Compression::allowed, nullptr);
  if (!after_owner || *after_owner + 10 > message.size()) return std::nullopt;
  at = *after_owner;
  if (dns::load_u16(&message[at]) != dns::rrtype::soa) return std::nullopt;
  at += 10;                               // type, class, TTL, RDLENGTH
  for (int name = 0; name < 2; ++name) {  // MNAME, RNAME
    const auto after = dns::read_name(message, at, dns::Compression::allowed, nullptr);
    if (!after) return std::nullopt;
    at = *after;
  }
  if (at + 4 > message.size()) return std::nullopt;
  return dns::load_u32(&message[at]);
}

Record soa_of(const ZoneModel& model, std::uint32_t serial) {
  return soa_record(model.zone(), serial);
}

}  // namespace

struct TransferService::Request {
  dns::Query query;
  std::vector<std::uint8_t> question;
  std::optional<std::uint32_t> client_serial;  // IXFR
  TsigCheck tsig;
};

namespace {

// The query and a copy of its question (echoed in every refusal and answer).
bool parse_request(std::span<const std::uint8_t> message, dns::Query& query,
                   std::vector<std::uint8_t>& question) {
  if (dns::parse_query(message, query) != dns::ParseStatus::ok) return false;
  question.assign(query.question.begin(), query.question.end());
  return true;
}

}  // namespace

TransferService::TransferService(ZoneModel& model, TransferOptions options)
    : model_(model), options_(std::move(options)) {}

std::uint16_t TransferService::admit(const Request& request, const store::IpAddress& client) const {
  if (!(request.query.qname == model_.zone().apex())) return kNotAuth;
  if (!store::any_contains(options_.allow, client)) return dns::rcode::refused;
  if (!options_.key) return 0;
  switch (request.tsig.verdict) {
    case TsigVerdict::ok:
      return 0;
    case TsigVerdict::unsigned_message:
      return dns::rcode::refused;
    default:
      return kNotAuth;  // RFC 8945 section 5.2: BADKEY, BADSIG, BADTIME
  }
}

std::unique_ptr<dns::MessageStream> TransferService::refuse_signed(
    const Request& request, std::span<const std::uint8_t> message, std::uint16_t rcode) const {
  refused_.fetch_add(1, std::memory_order_relaxed);
  auto refusal = std::make_unique<RefusalStream>(
      request.query.header.id, request.query.header.flags, request.question, rcode);
  const TsigVerdict verdict = request.tsig.verdict;
  if (options_.key && verdict == TsigVerdict::ok) {
    // A signed request gets a signed answer, a refusal too (another zone).
    auto signer = std::make_shared<TsigSigner>(*options_.key, request.tsig.request_mac);
    refusal->finish_with([signer](std::span<std::uint8_t> out, std::size_t size) {
      const std::size_t signed_size = signer->sign(out, size, std::time(nullptr));
      return signed_size != 0 ? signed_size : size;
    });
  } else if (options_.key && rcode == kNotAuth) {
    // The error goes back in a TSIG record, so the client can tell BADKEY,
    // BADSIG and BADTIME apart (RFC 8945 section 5.3.2).
    refusal->finish_with([key = *options_.key,
                          request_bytes = std::vector<std::uint8_t>(message.begin(), message.end()),
                          verdict](std::span<std::uint8_t> out, std::size_t size) {
      return append_tsig_error(out, size, request_bytes, verdict, key, std::time(nullptr));
    });
  }
  return refusal;
}

std::unique_ptr<TransferStream> TransferService::full_zone(const Request& request,
                                                           const ZoneVersion& version) const {
  auto stream = std::make_unique<TransferStream>(request.query.header.id, request.question);
  stream->append(soa_of(model_, version.serial));
  stream->append(version.static_records);
  for (const auto& [service, records] : version.services) stream->append(records);
  stream->append(soa_of(model_, version.serial));
  return stream;
}

std::unique_ptr<dns::MessageStream> TransferService::transfer(std::span<const std::uint8_t> message,
                                                              const store::IpAddress& client) {
  Request request;
  if (!parse_request(message, request.query, request.question)) return nullptr;
  // Before the TSIG check a refusal is unsigned (refuse_signed adds nothing).
  const auto refuse = [&](std::uint16_t rcode) { return refuse_signed(request, message, rcode); };
  const bool ixfr = request.query.qtype == dns::rrtype::ixfr;
  if (ixfr) {
    request.client_serial = client_serial(message, request.query);
    if (!request.client_serial) return refuse(dns::rcode::formerr);
  }
  if (options_.key) request.tsig = verify_request(message, *options_.key, std::time(nullptr));
  if (const std::uint16_t rcode = admit(request, client); rcode != 0) {
    return refuse_signed(request, message, rcode);
  }
  std::unique_ptr<TransferStream> stream;
  std::shared_ptr<const ZoneVersion> version;
  const auto steps = ixfr ? model_.steps_since(*request.client_serial, &version) : std::nullopt;
  if (!ixfr || !steps) {
    if (!version) version = model_.current();
    (ixfr ? ixfr_as_axfr_ : axfr_).fetch_add(1, std::memory_order_relaxed);
    stream = full_zone(request, *version);
  } else {
    ixfr_.fetch_add(1, std::memory_order_relaxed);
    auto incremental = std::make_unique<TransferStream>(request.query.header.id, request.question);
    incremental->append(soa_of(model_, version->serial));
    for (const auto& step : *steps) {  // RFC 1995 section 4: old SOA, deletions, new SOA, additions
      incremental->append(soa_of(model_, step->from));
      incremental->append(RecordChunk(step, &step->removed));
      incremental->append(soa_of(model_, step->to));
      incremental->append(RecordChunk(step, &step->added));
    }
    if (!steps->empty()) incremental->append(soa_of(model_, version->serial));
    stream = std::move(incremental);
  }
  if (options_.key) {
    stream->sign_with(TsigSigner(*options_.key, request.tsig.request_mac));
  }
  return stream;
}

std::unique_ptr<dns::MessageStream> TransferService::transfer_over_udp(
    std::span<const std::uint8_t> message, const store::IpAddress& client) {
  Request request;
  if (!parse_request(message, request.query, request.question)) return nullptr;
  // Before the TSIG check a refusal is unsigned (refuse_signed adds nothing).
  const auto refuse = [&](std::uint16_t rcode) { return refuse_signed(request, message, rcode); };
  // RFC 5936 section 4.2: AXFR needs a stream transport.
  if (request.query.qtype == dns::rrtype::axfr) return refuse(dns::rcode::formerr);
  if (!client_serial(message, request.query)) return refuse(dns::rcode::formerr);
  if (options_.key) request.tsig = verify_request(message, *options_.key, std::time(nullptr));
  if (const std::uint16_t rcode = admit(request, client); rcode != 0) {
    return refuse_signed(request, message, rcode);
  }
  // RFC 1995 section 2: the current SOA alone; a client behind asks again over TCP.
  auto stream = std::make_unique<TransferStream>(request.query.header.id, request.question);
  stream->append(soa_of(model_, model_.current()->serial));
  if (options_.key) stream->sign_with(TsigSigner(*options_.key, request.tsig.request_mac));
  ixfr_.fetch_add(1, std::memory_order_relaxed);
  return stream;
}

std::size_t TransferService::answer_udp(std::span<const std::uint8_t> message,
                                        const store::IpAddress& client,
                                        std::span<std::uint8_t> out) {
  auto stream = transfer_over_udp(message, client);
  return stream ? stream->next(out) : 0;
}

TransferStats TransferService::stats() const {
  return {axfr_.load(), ixfr_.load(), ixfr_as_axfr_.load(), refused_.load()};
}

}  // namespace xfr
