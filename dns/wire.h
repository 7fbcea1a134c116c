// DNS wire format basics (RFC 1035 section 4): constants, the header, and domain
// names. Hand-written because the query path must not allocate or pay for a
// general-purpose parser; it is cross-checked against ldns in tests and fuzzed.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dns {

namespace rrtype {
inline constexpr std::uint16_t a = 1;
inline constexpr std::uint16_t ns = 2;
inline constexpr std::uint16_t cname = 5;
inline constexpr std::uint16_t soa = 6;
inline constexpr std::uint16_t mx = 15;
inline constexpr std::uint16_t txt = 16;
inline constexpr std::uint16_t aaaa = 28;
inline constexpr std::uint16_t srv = 33;
inline constexpr std::uint16_t dname = 39;
inline constexpr std::uint16_t opt = 41;
inline constexpr std::uint16_t tkey = 249;
inline constexpr std::uint16_t tsig = 250;
inline constexpr std::uint16_t ixfr = 251;
inline constexpr std::uint16_t axfr = 252;
inline constexpr std::uint16_t maila = 253;
inline constexpr std::uint16_t mailb = 254;
inline constexpr std::uint16_t any = 255;
}  // namespace rrtype

namespace rrclass {
inline constexpr std::uint16_t in = 1;
inline constexpr std::uint16_t chaos = 3;
}  // namespace rrclass

// Response codes; values above 15 need the EDNS extended RCODE (RFC 6891).
namespace rcode {
inline constexpr std::uint16_t noerror = 0;
inline constexpr std::uint16_t formerr = 1;
inline constexpr std::uint16_t servfail = 2;
inline constexpr std::uint16_t nxdomain = 3;
inline constexpr std::uint16_t notimp = 4;
inline constexpr std::uint16_t refused = 5;
inline constexpr std::uint16_t badvers = 16;
}  // namespace rcode

namespace flag {
inline constexpr std::uint16_t qr = 0x8000;
inline constexpr std::uint16_t aa = 0x0400;
inline constexpr std::uint16_t tc = 0x0200;
inline constexpr std::uint16_t rd = 0x0100;
inline constexpr std::uint16_t ra = 0x0080;
inline constexpr std::uint16_t ad = 0x0020;
inline constexpr std::uint16_t cd = 0x0010;
}  // namespace flag

inline constexpr std::uint8_t kOpcodeQuery = 0;
inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::size_t kMaxNameLength = 255;  // wire form, root label included
inline constexpr std::size_t kMaxLabelLength = 63;
inline constexpr std::size_t kMaxLabels = 127;  // 255 bytes of 1-character labels
inline constexpr std::size_t kMaxMessageSize = 65535;
inline constexpr std::size_t kMinUdpPayload = 512;  // RFC 1035 / RFC 6891 floor
// An OPT record without options: root owner, type, class, TTL, RDLENGTH.
inline constexpr std::size_t kOptRecordSize = 11;
// The offset of the question name, the usual target of compression pointers.
inline constexpr std::uint16_t kQuestionNameOffset = kHeaderSize;

inline std::uint16_t load_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline void store_u16(std::uint8_t* p, std::uint16_t value) {
  p[0] = static_cast<std::uint8_t>(value >> 8);
  p[1] = static_cast<std::uint8_t>(value);
}
inline void store_u32(std::uint8_t* p, std::uint32_t value) {
  store_u16(p, static_cast<std::uint16_t>(value >> 16));
  store_u16(p + 2, static_cast<std::uint16_t>(value));
}

// DNS compares names case-insensitively in ASCII only (RFC 4343).
constexpr std::uint8_t ascii_lower(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + ('a' - 'A')) : c;
}

struct Header {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;

  bool qr() const { return (flags & flag::qr) != 0; }
  std::uint8_t opcode() const { return static_cast<std::uint8_t>((flags >> 11) & 0x0F); }
  std::uint8_t rcode() const { return static_cast<std::uint8_t>(flags & 0x0F); }
};

// nullopt when the message is shorter than a header.
std::optional<Header> read_header(std::span<const std::uint8_t> message);

// A domain name in uncompressed wire form, lower-cased, with its label offsets.
// Fixed-size storage so that the query path never allocates for names.
class Name {
 public:
  Name() = default;  // the root name

  // Presentation form without escapes ("www.Example." or "www.example"); the name
  // is taken as absolute. nullopt for empty labels or length violations.
  static std::optional<Name> from_text(std::string_view text);
  // `labels` (leftmost first) followed by `suffix`; nullopt if too long.
  static std::optional<Name> from_labels(std::initializer_list<std::string_view> labels,
                                         const Name& suffix);

  std::span<const std::uint8_t> wire() const { return {wire_.data(), size_}; }
  std::size_t label_count() const { return label_count_; }
  // Label `index` counted from the left (0 is the leftmost), without its length.
  std::string_view label(std::size_t index) const;
  // Wire form of the name without its `first_label` leftmost labels.
  std::span<const std::uint8_t> suffix(std::size_t first_label) const;
  // True when this name equals `ancestor` or lies below it.
  bool is_subdomain_of(const Name& ancestor) const;
  // Lower-case presentation form with the trailing dot; "." for the root.
  std::string to_text() const;

  // Appends one label (lower-cased); false if the name would exceed its limits.
  bool append_label(std::span<const std::uint8_t> label);

  friend bool operator==(const Name& a, const Name& b) {
    return std::ranges::equal(a.wire(), b.wire());
  }

 private:
  std::array<std::uint8_t, kMaxNameLength> wire_{0};
  std::uint8_t size_ = 1;  // the root label
  std::uint8_t label_count_ = 0;
  std::array<std::uint8_t, kMaxLabels> label_offsets_{};
};

enum class Compression : std::uint8_t { forbidden, allowed };

// Reads the name at `offset` of `message` into `out` (lower-cased; may be null to
// only validate). With Compression::allowed, pointers are followed, and each one
// must point before the previous jump target, so a hostile message cannot make the
// reader loop. Returns the offset just past the name where it starts (after the
// first pointer, if any), or nullopt if the name is malformed or truncated.
std::optional<std::size_t> read_name(std::span<const std::uint8_t> message, std::size_t offset,
                                     Compression compression, Name* out);

}  // namespace dns
