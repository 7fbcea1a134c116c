// TSIG (RFC 8945): the key line, verifying a request with ldns, and signing the
// messages of a response with OpenSSL's HMAC (see TsigSigner::sign for why).
#include "xfr/tsig.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

#include "dns/ldns.h"

namespace xfr {
namespace {

// RFC 8945 section 10 recommends 300 s; we sign with it and never accept more.
constexpr std::uint16_t kFudge = 300;
constexpr std::size_t kHeaderSize = LDNS_HEADER_SIZE;
constexpr std::size_t kArcountOffset = 10;
constexpr std::string_view kExpected = "expected one line ALGORITHM:NAME:BASE64SECRET";
constexpr std::string_view kSpace = " \t\r\n\f\v";

struct RdfFree {
  void operator()(ldns_rdf* rdf) const { ldns_rdf_deep_free(rdf); }
};
struct RrFree {
  void operator()(ldns_rr* rr) const { ldns_rr_free(rr); }
};
struct PktFree {
  void operator()(ldns_pkt* pkt) const { ldns_pkt_free(pkt); }
};
using RdfPtr = std::unique_ptr<ldns_rdf, RdfFree>;
using RrPtr = std::unique_ptr<ldns_rr, RrFree>;
using PktPtr = std::unique_ptr<ldns_pkt, PktFree>;

// hmac-sha384 is left out: ldns 1.8.3 misspells it ("hmac-shac384.") and so
// could not verify requests signed with it.
struct Algorithm {
  std::string_view name;    // as in the key line, without the trailing dot
  std::string_view digest;  // OpenSSL's digest name
  std::size_t mac_size;
};
constexpr std::array<Algorithm, 3> kAlgorithms{{
    {"hmac-sha256", "SHA256", 32},
    {"hmac-sha1", "SHA1", 20},
    {"hmac-sha512", "SHA512", 64},
}};

const Algorithm* find_algorithm(std::string_view name) {
  for (const auto& algorithm : kAlgorithms) {
    if (algorithm.name == name) return &algorithm;
  }
  return nullptr;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  const auto begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// The uncompressed, lower-case (RFC 8945 section 4.3.3 "canonical") wire form
// of a name, or nothing when it is not a valid domain name.
std::optional<std::vector<std::uint8_t>> name_wire(const std::string& name) {
  RdfPtr rdf(ldns_dname_new_frm_str(name.c_str()));
  if (!rdf) return std::nullopt;
  ldns_dname2canonical(rdf.get());
  const auto* data = ldns_rdf_data(rdf.get());
  return std::vector<std::uint8_t>(data, data + ldns_rdf_size(rdf.get()));
}

// Owner + type/class/TTL/RDLENGTH + algorithm + time, fudge, MAC size, MAC,
// original ID, error, other length: what sign() appends.
std::size_t tsig_record_size(std::size_t name, std::size_t algorithm, std::size_t mac) {
  return name + 10 + algorithm + 6 + 2 + 2 + mac + 2 + 2 + 2;
}

// Throws TsigError naming just the problem: callers add where the key came from.
// Nothing here may quote the secret (the text after the last ':').
TsigKey parse_key_fields(std::string_view line) {
  line = trim(line);
  if (line.empty()) throw TsigError("empty; " + std::string(kExpected));
  if (line.find_first_of(kSpace) != std::string_view::npos) {
    throw TsigError("contains whitespace or several lines; " + std::string(kExpected));
  }
  const auto first = line.find(':');
  const auto last = line.rfind(':');
  if (first == std::string_view::npos || first == last) {
    throw TsigError("missing parts; " + std::string(kExpected));
  }
  TsigKey key;
  key.algorithm = lower(line.substr(0, first));
  if (key.algorithm.ends_with('.')) key.algorithm.pop_back();
  key.name = lower(line.substr(first + 1, last - first - 1));
  const auto secret = std::string(line.substr(last + 1));
  if (key.name.find(':') != std::string::npos) {
    throw TsigError("too many ':'; " + std::string(kExpected));
  }
  const auto* algorithm = find_algorithm(key.algorithm);
  if (algorithm == nullptr) {
    throw TsigError("unsupported algorithm \"" + key.algorithm +
                    "\" (use hmac-sha256, hmac-sha512 or hmac-sha1)");
  }
  if (key.name.empty() || key.name == ".") throw TsigError("empty key name");
  if (!key.name.ends_with('.')) key.name += '.';
  const auto wire = name_wire(key.name);
  if (!wire) throw TsigError("key name \"" + key.name + "\" is not a valid domain name");
  // The record must fit in what the transfer code leaves free (kTsigReserve).
  if (tsig_record_size(wire->size(), algorithm->name.size() + 2, algorithm->mac_size) >
      kTsigReserve) {
    throw TsigError("key name \"" + key.name + "\" is too long");
  }
  if (secret.empty()) throw TsigError("empty secret");
  ldns_rdf* decoded = nullptr;
  if (ldns_str2rdf_b64(&decoded, secret.c_str()) != LDNS_STATUS_OK || decoded == nullptr) {
    throw TsigError("the secret is not valid base64");
  }
  RdfPtr owned(decoded);
  if (ldns_rdf_size(decoded) == 0) throw TsigError("empty secret");  // ldns reads "-" as empty
  key.secret.assign(reinterpret_cast<const char*>(ldns_rdf_data(decoded)), ldns_rdf_size(decoded));
  OPENSSL_cleanse(ldns_rdf_data(decoded), ldns_rdf_size(decoded));
  return key;
}

std::uint16_t read16(const std::uint8_t* data) {
  return static_cast<std::uint16_t>((data[0] << 8) | data[1]);
}

void write16(std::uint8_t* data, std::uint16_t value) {
  data[0] = static_cast<std::uint8_t>(value >> 8);
  data[1] = static_cast<std::uint8_t>(value);
}

void put(std::vector<std::uint8_t>& out, std::uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void put(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// ---- verifying ---------------------------------------------------------

struct Located {
  TsigVerdict verdict = TsigVerdict::malformed;
  RrPtr tsig;  // when verdict is ok
};

// Walks every record: the TSIG must be the last additional one (RFC 8945
// section 5.1) with nothing after it. ldns_wire2pkt checks neither (it takes a
// TSIG from anywhere in the additional section and ignores trailing bytes),
// and bytes the MAC does not cover must not be accepted as signed.
Located locate_tsig(std::span<const std::uint8_t> message) {
  if (message.size() < kHeaderSize) return {};
  const auto* wire = message.data();
  const std::array<std::uint16_t, 4> counts{LDNS_QDCOUNT(wire), LDNS_ANCOUNT(wire),
                                            LDNS_NSCOUNT(wire), LDNS_ARCOUNT(wire)};
  const std::array<ldns_pkt_section, 4> sections{LDNS_SECTION_QUESTION, LDNS_SECTION_ANSWER,
                                                 LDNS_SECTION_AUTHORITY, LDNS_SECTION_ADDITIONAL};
  std::size_t pos = kHeaderSize;
  Located found;
  for (std::size_t s = 0; s < sections.size(); ++s) {
    for (std::uint16_t i = 0; i < counts[s]; ++i) {
      ldns_rr* raw = nullptr;
      if (ldns_wire2rr(&raw, wire, message.size(), &pos, sections[s]) != LDNS_STATUS_OK) return {};
      RrPtr rr(raw);
      if (s == 0 || ldns_rr_get_type(rr.get()) != LDNS_RR_TYPE_TSIG) continue;
      if (s != 3 || i + 1 != counts[s]) return {};
      found.tsig = std::move(rr);
    }
  }
  if (!found.tsig) return {TsigVerdict::unsigned_message, nullptr};
  if (pos != message.size() || ldns_rr_rd_count(found.tsig.get()) != 7 ||
      ldns_rr_get_class(found.tsig.get()) != LDNS_RR_CLASS_ANY ||
      ldns_rdf_size(ldns_rr_rdf(found.tsig.get(), 1)) != 6 ||
      ldns_rdf_size(ldns_rr_rdf(found.tsig.get(), 3)) < 2) {
    return {};
  }
  found.verdict = TsigVerdict::ok;
  return found;
}

// Case-insensitive, as DNS names compare.
bool same_name(const ldns_rdf* name, const std::string& expected) {
  RdfPtr other(ldns_dname_new_frm_str(expected.c_str()));
  return name != nullptr && other && ldns_dname_compare(name, other.get()) == 0;
}

// ldns wants the secret as base64 text; wiped after use.
std::string secret_base64(const std::string& secret) {
  RdfPtr rdf(ldns_rdf_new_frm_data(LDNS_RDF_TYPE_B64, secret.size(), secret.data()));
  char* text = rdf ? ldns_rdf2str(rdf.get()) : nullptr;
  if (rdf) OPENSSL_cleanse(ldns_rdf_data(rdf.get()), ldns_rdf_size(rdf.get()));
  if (text == nullptr) throw TsigError("TSIG: out of memory");
  std::string out(text);
  OPENSSL_cleanse(text, out.size());
  std::free(text);
  return out;
}

// The MAC check itself is ldns's (ldns_pkt_tsig_verify: strips the TSIG,
// HMACs the message and all TSIG variables, compares in constant time).
bool mac_verifies(std::span<const std::uint8_t> message, const ldns_rr* tsig, const TsigKey& key) {
  // ldns digests the message's own ID, but RFC 8945 section 4.3.1 digests the
  // Original ID (they differ when a forwarder changed the ID): use a copy
  // carrying the Original ID.
  std::vector<std::uint8_t> wire(message.begin(), message.end());
  write16(wire.data(), ldns_rdf2native_int16(ldns_rr_rdf(tsig, 4)));
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, wire.data(), wire.size()) != LDNS_STATUS_OK) return false;
  PktPtr pkt(raw);
  auto secret = secret_base64(key.secret);
  const bool ok = ldns_pkt_tsig_verify(pkt.get(), wire.data(), wire.size(), key.name.c_str(),
                                       secret.c_str(), nullptr);
  OPENSSL_cleanse(secret.data(), secret.size());
  return ok;
}

// RFC 8945 section 5.2.3. ldns does not check the time at all. The window is
// the request's own fudge but never more than ours, so that a client cannot
// widen it (a replayed request stays usable only that long).
bool within_fudge(const ldns_rr* tsig, std::time_t now) {
  const auto* signed_at = ldns_rdf_data(ldns_rr_rdf(tsig, 1));
  std::int64_t time_signed = 0;
  for (int i = 0; i < 6; ++i) time_signed = (time_signed << 8) | signed_at[i];
  const std::int64_t fudge = std::min(ldns_rdf2native_int16(ldns_rr_rdf(tsig, 2)), kFudge);
  const std::int64_t skew = static_cast<std::int64_t>(now) - time_signed;
  return skew <= fudge && -skew <= fudge;
}

// ---- signing -------------------------------------------------------------

// HMAC over `parts` in order, streamed (a message is up to 64 KiB).
std::string hmac(const Algorithm& algorithm, const std::string& secret,
                 std::initializer_list<std::span<const std::uint8_t>> parts) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                        &EVP_MAC_free);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      mac ? EVP_MAC_CTX_new(mac.get()) : nullptr, &EVP_MAC_CTX_free);
  std::string digest(algorithm.digest);
  const std::array<OSSL_PARAM, 2> params{
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest.data(), 0),
      OSSL_PARAM_construct_end()};
  bool ok = ctx && EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                                secret.size(), params.data()) == 1;
  for (const auto part : parts) {
    ok = ok && EVP_MAC_update(ctx.get(), part.data(), part.size()) == 1;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  std::size_t size = 0;
  ok = ok && EVP_MAC_final(ctx.get(), out.data(), &size, out.size()) == 1;
  if (!ok) throw TsigError("TSIG: HMAC-" + digest + " failed in OpenSSL");
  return {reinterpret_cast<const char*>(out.data()), size};
}

struct Variables {
  std::vector<std::uint8_t> name;       // canonical wire form
  std::vector<std::uint8_t> algorithm;  // canonical wire form
  std::uint64_t time_signed = 0;
  std::uint16_t original_id = 0;
  std::uint16_t error = 0;          // an error response's (RFC 8945 section 5.3.2)
  std::vector<std::uint8_t> other;  // BADTIME: the server's time
};

// RFC 8945 section 4.3.3 (all variables) or 5.3.1 (timers only, for every
// message of a response after the first).
std::vector<std::uint8_t> digest_variables(const Variables& v, bool timers_only) {
  std::vector<std::uint8_t> out;
  if (!timers_only) {
    put(out, v.name);
    put(out, LDNS_RR_CLASS_ANY, 2);
    put(out, 0, 4);  // TTL
    put(out, v.algorithm);
  }
  put(out, v.time_signed, 6);
  put(out, kFudge, 2);
  if (!timers_only) {
    put(out, v.error, 2);
    put(out, v.other.size(), 2);
    put(out, v.other);
  }
  return out;
}

std::vector<std::uint8_t> tsig_record(const Variables& v, const std::string& mac) {
  std::vector<std::uint8_t> out;
  put(out, v.name);
  put(out, LDNS_RR_TYPE_TSIG, 2);
  put(out, LDNS_RR_CLASS_ANY, 2);
  put(out, 0, 4);  // TTL
  put(out, tsig_record_size(0, v.algorithm.size(), mac.size()) - 10 + v.other.size(), 2);
  put(out, v.algorithm);
  put(out, v.time_signed, 6);
  put(out, kFudge, 2);
  put(out, mac.size(), 2);
  put(out, bytes_of(mac));
  put(out, v.original_id, 2);
  put(out, v.error, 2);
  put(out, v.other.size(), 2);
  put(out, v.other);
  return out;
}

// A name rdf (a TSIG owner or algorithm) in canonical (lower-case) wire form.
std::vector<std::uint8_t> canonical_wire(const ldns_rdf* name) {
  RdfPtr copy(ldns_rdf_clone(name));
  ldns_dname2canonical(copy.get());
  const auto* data = ldns_rdf_data(copy.get());
  return {data, data + ldns_rdf_size(copy.get())};
}

}  // namespace

TsigKey parse_tsig_key(std::string_view line) {
  try {
    return parse_key_fields(line);
  } catch (const TsigError& e) {
    throw TsigError(std::string("TSIG key: ") + e.what());
  }
}

TsigKey read_tsig_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TsigError("TSIG key file " + path + ": cannot open: " + std::strerror(errno));
  std::string content(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>{});
  try {
    auto key = parse_key_fields(content);
    OPENSSL_cleanse(content.data(), content.size());
    return key;
  } catch (const TsigError& e) {
    OPENSSL_cleanse(content.data(), content.size());
    throw TsigError("TSIG key file " + path + ": " + e.what());
  }
}

// RFC 8945 section 5.2: key (BADKEY), then MAC (BADSIG), then time (BADTIME).
TsigCheck verify_request(std::span<const std::uint8_t> message, const TsigKey& key,
                         std::time_t now) {
  auto located = locate_tsig(message);
  if (located.verdict != TsigVerdict::ok) return {located.verdict, {}};
  const ldns_rr* tsig = located.tsig.get();
  if (!same_name(ldns_rr_owner(tsig), key.name) ||
      !same_name(ldns_rr_rdf(tsig, 0), key.algorithm + ".")) {
    return {TsigVerdict::bad_key, {}};
  }
  if (!mac_verifies(message, tsig, key)) return {TsigVerdict::bad_signature, {}};
  if (!within_fudge(tsig, now)) return {TsigVerdict::bad_time, {}};
  // The MAC field is MAC size (2 bytes) + MAC; the request MAC is the MAC bytes.
  const ldns_rdf* mac = ldns_rr_rdf(tsig, 3);
  const auto* data = reinterpret_cast<const char*>(ldns_rdf_data(mac));
  return {TsigVerdict::ok, std::string(data + 2, ldns_rdf_size(mac) - 2)};
}

// RFC 8945 sections 5.2.2, 5.2.3 and 5.3.2: BADKEY and BADSIG answers carry an
// unsigned TSIG (no MAC) naming the error; a BADTIME answer is signed (the key
// is right) and tells the client our time in Other Data.
std::size_t append_tsig_error(std::span<std::uint8_t> buffer, std::size_t size,
                              std::span<const std::uint8_t> request, TsigVerdict verdict,
                              const TsigKey& key, std::time_t now) {
  const std::uint16_t error = verdict == TsigVerdict::bad_signature ? 16
                              : verdict == TsigVerdict::bad_key     ? 17
                              : verdict == TsigVerdict::bad_time    ? 18
                                                                    : 0;
  auto located = locate_tsig(request);
  if (error == 0 || located.verdict != TsigVerdict::ok || size < kHeaderSize) return size;
  const ldns_rr* tsig = located.tsig.get();
  const auto our_time =
      static_cast<std::uint64_t>(std::max<std::time_t>(now, 0)) & 0xffffffffffffULL;
  Variables v{canonical_wire(ldns_rr_owner(tsig)),
              canonical_wire(ldns_rr_rdf(tsig, 0)),
              our_time,
              read16(buffer.data()),
              error,
              {}};
  std::string mac;
  if (error == 18) {
    const auto* signed_at = ldns_rdf_data(ldns_rr_rdf(tsig, 1));
    v.time_signed = 0;
    for (int i = 0; i < 6; ++i) v.time_signed = (v.time_signed << 8) | signed_at[i];
    put(v.other, our_time, 6);
    const ldns_rdf* request_mac = ldns_rr_rdf(tsig, 3);  // MAC size + MAC
    const std::span<const std::uint8_t> prior(ldns_rdf_data(request_mac),
                                              ldns_rdf_size(request_mac));
    mac = hmac(*find_algorithm(key.algorithm), key.secret,
               {prior, buffer.first(size), digest_variables(v, false)});
  }
  const auto record = tsig_record(v, mac);
  if (record.size() > buffer.size() - size) return size;
  const std::uint16_t arcount = read16(buffer.data() + kArcountOffset);
  std::copy(record.begin(), record.end(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
  write16(buffer.data() + kArcountOffset, static_cast<std::uint16_t>(arcount + 1));
  return size + record.size();
}

TsigSigner::TsigSigner(TsigKey key, std::string request_mac)
    : key_(std::move(key)), previous_mac_(std::move(request_mac)) {
  if (find_algorithm(key_.algorithm) == nullptr || !name_wire(key_.name)) {
    throw TsigError("TSIG: unusable key (parse it with parse_tsig_key)");
  }
}

// Signed here with OpenSSL's HMAC rather than ldns_pkt_tsig_sign_next: ldns
// takes the time from gettimeofday (so `now` could not be honoured) and signs
// an ldns_pkt, which would mean parsing and re-encoding each message of up to
// 64 KiB. The digest layout is checked against ldns_pkt_tsig_verify_next in
// tests/xfr/tsig_test.cpp. An empty request MAC signs a request (a NOTIFY):
// its digest has no prior MAC.
std::size_t TsigSigner::sign(std::span<std::uint8_t> buffer, std::size_t size, std::time_t now) {
  if (size < kHeaderSize || size > buffer.size()) return 0;
  const std::uint16_t arcount = read16(buffer.data() + kArcountOffset);
  if (arcount == 0xffff) return 0;
  const auto& algorithm = *find_algorithm(key_.algorithm);
  Variables v{*name_wire(key_.name), *name_wire(key_.algorithm + "."),
              static_cast<std::uint64_t>(std::max<std::time_t>(now, 0)) & 0xffffffffffffULL,
              read16(buffer.data()), 0, {}};
  std::vector<std::uint8_t> prior;
  if (!first_ || !previous_mac_.empty()) {
    put(prior, previous_mac_.size(), 2);
    put(prior, bytes_of(previous_mac_));
  }
  const auto variables = digest_variables(v, !first_);
  const auto mac = hmac(algorithm, key_.secret, {prior, buffer.first(size), variables});
  const auto record = tsig_record(v, mac);
  if (record.size() > buffer.size() - size) return 0;  // state unchanged: may retry
  std::copy(record.begin(), record.end(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
  write16(buffer.data() + kArcountOffset, static_cast<std::uint16_t>(arcount + 1));
  previous_mac_ = mac;
  first_ = false;
  return size + record.size();
}

}  // namespace xfr
