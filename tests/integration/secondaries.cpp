#include "tests/integration/secondaries.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "tests/dns/test_support.h"

namespace xfr_test {
namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// "hmac-sha256:name:secret" as its three parts.
struct KeyParts {
  std::string algorithm, name, secret;
};
KeyParts key_parts(const std::string& tsig) {
  const auto first = tsig.find(':');
  const auto second = tsig.find(':', first + 1);
  return {tsig.substr(0, first), tsig.substr(first + 1, second - first - 1),
          tsig.substr(second + 1)};
}

// True once a server on `port` answers DNS at all (any status).
bool answers_within_10s(std::uint16_t port) {
  return test_support::wait_until(
      [&] {
        return dns::testing::run_command("kdig @127.0.0.1 -p " + std::to_string(port) +
                                         " +timeout=1 +retry=0 version.bind CH TXT 2>&1")
                   .value_or("")
                   .find("status: ") != std::string::npos;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
}

class KnotSecondary final : public Secondary {
 public:
  KnotSecondary(const test_support::TempDir& dir, SecondaryOptions options)
      : Secondary(std::move(options)), dir_(dir) {}

  bool start() override {
    const std::string path = dir_.path().string();
    std::string key, key_ref;
    if (options_.tsig) {
      const KeyParts parts = key_parts(*options_.tsig);
      key = "key:\n  - id: " + parts.name + "\n    algorithm: " + parts.algorithm +
            "\n    secret: " + parts.secret + "\n";
      key_ref = "    key: " + parts.name + "\n";
    }
    const std::string conf =
        "server:\n    listen: 127.0.0.1@" + std::to_string(options_.port) +
        "\n    rundir: " + path + "\n" + key +
        "log:\n  - target: stderr\n    any: info\n"
        "database:\n    storage: " +
        path +
        "/knot-db\n"
        "remote:\n  - id: primary\n    address: 127.0.0.1@" +
        std::to_string(options_.primary_port) + "\n" + key_ref + more_remotes(key_ref) +
        // With a key, NOTIFY must be signed with it too.
        "acl:\n  - id: from_primary\n    address: 127.0.0.1\n    action: notify\n" + key_ref +
        "  - id: transfer_out\n    address: 127.0.0.1\n    action: transfer\n"
        "zone:\n  - domain: discovery.\n    storage: " +
        path + "\n    file: knot-secondary.zone\n    master: [" + masters() +
        "]\n"
        "    acl: [from_primary, transfer_out]\n    zonefile-sync: -1\n"
        "    zonefile-load: none\n    journal-content: changes\n";
    std::filesystem::create_directories(path + "/knot-db");  // the journal lives there
    write_file(path + "/knot-secondary.conf", conf);
    process_ = std::make_unique<test_support::Process>(
        std::vector<std::string>{"/usr/sbin/knotd", "-c", path + "/knot-secondary.conf"},
        path + "/knot-secondary.log");
    return answers_within_10s(options_.port);
  }
  std::string log() const override {
    return test_support::read_file(dir_.file("knot-secondary.log"));
  }

 private:
  std::string more_remotes(const std::string& key_ref) const {
    std::string remotes;
    for (std::size_t i = 0; i < options_.more_primaries.size(); ++i) {
      remotes += "  - id: primary" + std::to_string(i + 2) + "\n    address: 127.0.0.1@" +
                 std::to_string(options_.more_primaries[i]) + "\n" + key_ref;
    }
    return remotes;
  }
  std::string masters() const {
    std::string list = "primary";
    for (std::size_t i = 0; i < options_.more_primaries.size(); ++i) {
      list += ", primary" + std::to_string(i + 2);
    }
    return list;
  }

 public:
  std::string name() const override { return "Knot"; }

 private:
  const test_support::TempDir& dir_;
  std::unique_ptr<test_support::Process> process_;
};

class NsdSecondary final : public Secondary {
 public:
  NsdSecondary(const test_support::TempDir& dir, SecondaryOptions options)
      : Secondary(std::move(options)), dir_(dir) {}

  bool start() override {
    const std::string path = dir_.path().string();
    std::string key, key_name = "NOKEY";
    if (options_.tsig) {
      const KeyParts parts = key_parts(*options_.tsig);
      key = "key:\n  name: " + parts.name + "\n  algorithm: " + parts.algorithm + "\n  secret: \"" +
            parts.secret + "\"\n";
      key_name = parts.name;
    }
    const std::string conf =
        "server:\n  ip-address: 127.0.0.1\n  port: " + std::to_string(options_.port) +
        "\n  zonesdir: \"" + path + "\"\n  database: \"\"\n  pidfile: \"" + path +
        "/nsd.pid\"\n  xfrdfile: \"" + path + "/nsd-xfrd.state\"\n  zonelistfile: \"" + path +
        "/nsd-zone.list\"\n  username: \"\"\n  chroot: \"\"\n  verbosity: 2\n"
        "  server-count: 1\n  xfrd-reload-timeout: 0\n"
        "remote-control:\n  control-enable: no\n" +
        key + "zone:\n  name: discovery.\n  zonefile: \"" + path +
        "/nsd-secondary.zone\"\n"
        "  allow-notify: 127.0.0.1 " +
        key_name + "\n  request-xfr: 127.0.0.1@" + std::to_string(options_.primary_port) + " " +
        key_name + "\n";
    write_file(path + "/nsd.conf", conf);
    process_ = std::make_unique<test_support::Process>(
        std::vector<std::string>{"/usr/sbin/nsd", "-d", "-c", path + "/nsd.conf"},
        path + "/nsd.log");
    return answers_within_10s(options_.port);
  }
  std::string log() const override { return test_support::read_file(dir_.file("nsd.log")); }
  std::string name() const override { return "NSD"; }

 private:
  const test_support::TempDir& dir_;
  std::unique_ptr<test_support::Process> process_;
};

}  // namespace

std::string sorted_answer(std::uint16_t port, const std::string& name, const std::string& type,
                          const std::string& extra) {
  const auto output = dns::testing::run_command("kdig @127.0.0.1 -p " + std::to_string(port) +
                                                " +short +timeout=1 +retry=1 " + extra + " " +
                                                name + " " + type + " 2>&1")
                          .value_or("");
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  std::string joined;
  for (const auto& line : lines) joined += line + "\n";
  return joined;
}

std::optional<std::uint32_t> Secondary::serial() const {
  const std::string soa = sorted_answer(options_.port, "discovery.", "SOA");
  std::istringstream fields(soa);
  std::string mname, rname;
  std::uint32_t serial = 0;
  if (!(fields >> mname >> rname >> serial)) return std::nullopt;
  return serial;
}

std::string Secondary::answer(const std::string& name, const std::string& type) const {
  return sorted_answer(options_.port, name, type);
}

std::unique_ptr<Secondary> make_knot(const test_support::TempDir& dir, SecondaryOptions options) {
  return std::make_unique<KnotSecondary>(dir, std::move(options));
}

std::unique_ptr<Secondary> make_nsd(const test_support::TempDir& dir, SecondaryOptions options) {
  return std::make_unique<NsdSecondary>(dir, std::move(options));
}

}  // namespace xfr_test
