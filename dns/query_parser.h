// Turns query bytes into a Query: header, question, EDNS. Decides the cases that
// are settled before looking at the question's name: drop, NOTIMP, FORMERR.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "dns/wire.h"

namespace dns {

struct Edns {
  std::uint16_t udp_payload = 0;  // as the client sent it
  std::uint8_t version = 0;
  bool dnssec_ok = false;
};

struct Query {
  Header header;
  Name qname;  // lower-cased
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  // The question section exactly as received, echoed in the response.
  std::span<const std::uint8_t> question;
  std::optional<Edns> edns;
};

enum class ParseStatus : std::uint8_t {
  ok,
  drop,             // shorter than a header, or a response (QR=1): no reply at all
  not_implemented,  // an opcode other than QUERY
  format_error,     // header readable, the rest is not (or breaks RFC 6891 rules)
};

// Fills `query` as far as it could be parsed (the header always, when readable).
ParseStatus parse_query(std::span<const std::uint8_t> message, Query& query);

}  // namespace dns
