// Real secondary servers for the zone-transfer tests: Knot DNS and NSD, each
// configured to transfer discovery. from the daemon (the hidden primary) on
// loopback, to accept its NOTIFY, and (Knot) to let the test transfer the
// zone back out for comparison. Each runs in the foreground as a child of the
// test, on free ports, in the test's directory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace xfr_test {

struct SecondaryOptions {
  std::uint16_t port = 0;          // where it answers (UDP and TCP)
  std::uint16_t primary_port = 0;  // the daemon's DNS port
  // "hmac-sha256:NAME:BASE64SECRET": transfers signed with it.
  std::optional<std::string> tsig;
  // Knot only: more daemons it may transfer from (several over PostgreSQL).
  std::vector<std::uint16_t> more_primaries = {};
};

class Secondary {
 public:
  virtual ~Secondary() = default;
  // Starts the server; false (with the reason in log()) when it did not.
  virtual bool start() = 0;
  virtual std::string log() const = 0;
  virtual std::string name() const = 0;
  std::uint16_t port() const { return options_.port; }
  // The zone's serial as the secondary answers it; nullopt before it has one.
  std::optional<std::uint32_t> serial() const;
  // `kdig +short` of NAME TYPE at this server, sorted lines.
  std::string answer(const std::string& name, const std::string& type) const;

 protected:
  explicit Secondary(SecondaryOptions options) : options_(std::move(options)) {}
  SecondaryOptions options_;
};

std::unique_ptr<Secondary> make_knot(const test_support::TempDir& dir, SecondaryOptions options);
std::unique_ptr<Secondary> make_nsd(const test_support::TempDir& dir, SecondaryOptions options);

// `kdig +short` at 127.0.0.1:PORT, its lines sorted (answers without order).
std::string sorted_answer(std::uint16_t port, const std::string& name, const std::string& type,
                          const std::string& extra = "");

}  // namespace xfr_test
