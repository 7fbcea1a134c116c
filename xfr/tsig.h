// TSIG (RFC 8945) for zone transfers: the key file, verifying a request's
// signature, and signing every message of the response (the first covers the
// request's MAC, each later one the previous message's MAC, RFC 8945 section
// 5.3.1). HMAC-SHA256 at least.
#pragma once

#include <cstdint>
#include <ctime>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace xfr {

class TsigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TsigKey {
  std::string algorithm;  // lower-case, e.g. "hmac-sha256"
  std::string name;       // lower-case, absolute, e.g. "transfer-key."
  std::string secret;     // the decoded secret bytes: never logged
};

// One line `ALGORITHM:NAME:BASE64SECRET` (the form `dig -y` takes; surrounding
// whitespace and a trailing newline ignored). Throws TsigError naming what is
// wrong, never quoting the secret.
TsigKey parse_tsig_key(std::string_view line);
// The same from a file; the error names the file.
TsigKey read_tsig_key_file(const std::string& path);

enum class TsigVerdict : std::uint8_t {
  unsigned_message,  // no TSIG record
  ok,
  bad_key,        // another key name or algorithm (RFC 8945 BADKEY)
  bad_signature,  // the MAC does not verify (BADSIG)
  bad_time,       // outside its fudge (BADTIME)
  malformed,      // a TSIG record that is not the last one, or cannot be read
};

struct TsigCheck {
  TsigVerdict verdict = TsigVerdict::unsigned_message;
  std::string request_mac;  // when ok: what the response's first MAC covers
};

// Checks the TSIG record of `message` (a whole DNS request as received)
// against `key`, with `now` as the time.
TsigCheck verify_request(std::span<const std::uint8_t> message, const TsigKey& key,
                         std::time_t now);

// Signs the messages of one response, in order.
class TsigSigner {
 public:
  TsigSigner(TsigKey key, std::string request_mac);
  // Appends the TSIG record to the message in buffer[0, size) (ARCOUNT
  // included) and returns the new size, or 0 when it does not fit in
  // buffer.size(). The message may be re-encoded (its size may change).
  std::size_t sign(std::span<std::uint8_t> buffer, std::size_t size, std::time_t now);

 private:
  TsigKey key_;
  std::string previous_mac_;  // the request's, then each signed message's
  bool first_ = true;
};

// Appends to the error response in buffer[0, size) the TSIG record RFC 8945
// wants for a request that failed verification with `verdict`: unsigned with
// the error for bad_key and bad_signature, signed with our time for bad_time
// (nothing for other verdicts). Returns the new size.
std::size_t append_tsig_error(std::span<std::uint8_t> buffer, std::size_t size,
                              std::span<const std::uint8_t> request, TsigVerdict verdict,
                              const TsigKey& key, std::time_t now);

// Room to leave at the end of a message for its TSIG record.
inline constexpr std::size_t kTsigReserve = 300;

}  // namespace xfr
