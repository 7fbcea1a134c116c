#include "dns/query_parser.h"

namespace dns {

namespace {

// Walks an EDNS OPT RDATA: options are {code, length, data}; only their framing is
// checked, unknown options are ignored (RFC 6891 section 6.1.2).
bool options_well_formed(std::span<const std::uint8_t> rdata) {
  std::size_t offset = 0;
  while (offset < rdata.size()) {
    if (offset + 4 > rdata.size()) return false;
    const std::size_t length = load_u16(&rdata[offset + 2]);
    offset += 4 + length;
  }
  return offset == rdata.size();
}

// Parses the records after the question, looking for the one OPT record that is
// allowed, in the additional section only.
bool parse_records(std::span<const std::uint8_t> message, std::size_t offset, const Header& header,
                   Query& query) {
  const std::size_t before_additional = std::size_t{header.ancount} + header.nscount;
  const std::size_t total = before_additional + header.arcount;
  Name owner;
  for (std::size_t i = 0; i < total; ++i) {
    const auto after_owner = read_name(message, offset, Compression::allowed, &owner);
    if (!after_owner || *after_owner + 10 > message.size()) return false;
    const std::uint8_t* fixed = &message[*after_owner];
    const std::uint16_t type = load_u16(fixed);
    const std::size_t rdata_length = load_u16(fixed + 8);
    const std::size_t rdata_offset = *after_owner + 10;
    if (rdata_offset + rdata_length > message.size()) return false;
    if (type == rrtype::opt) {
      const bool in_additional = i >= before_additional;
      if (!in_additional || query.edns || owner.label_count() != 0) return false;
      if (!options_well_formed(message.subspan(rdata_offset, rdata_length))) return false;
      query.edns = Edns{load_u16(fixed + 2), fixed[5], (load_u16(fixed + 6) & 0x8000) != 0};
    }
    offset = rdata_offset + rdata_length;
  }
  return true;
}

}  // namespace

ParseStatus parse_query(std::span<const std::uint8_t> message, Query& query) {
  const auto header = read_header(message);
  if (!header || header->qr()) return ParseStatus::drop;
  query.header = *header;
  if (header->opcode() != kOpcodeQuery) return ParseStatus::not_implemented;
  if (header->qdcount != 1) return ParseStatus::format_error;
  // A pointer in the question could only point into the header.
  const auto name_end = read_name(message, kHeaderSize, Compression::forbidden, &query.qname);
  if (!name_end || *name_end + 4 > message.size()) return ParseStatus::format_error;
  query.qtype = load_u16(&message[*name_end]);
  query.qclass = load_u16(&message[*name_end + 2]);
  const std::size_t question_end = *name_end + 4;
  query.question = message.subspan(kHeaderSize, question_end - kHeaderSize);
  if (!parse_records(message, question_end, *header, query)) return ParseStatus::format_error;
  return ParseStatus::ok;
}

}  // namespace dns
