// The address policy in the real daemon: registrations over HTTP that point at a
// denied range or at the daemon's own listeners are refused with 400 and never
// stored. Every registration that may be accepted uses a ttl check, so the health
// checker probes nothing (no traffic leaves loopback).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace {

using nlohmann::json;
using test_support::Daemon;
using test_support::HttpClient;
using test_support::TempDir;

const json kTtlCheck = {{"type", "ttl"}, {"ttl", "1h"}};

json instance(const std::string& address, std::uint16_t port) {
  return {{"address", address}, {"port", port}, {"check", kTtlCheck}};
}

void expect_refused(const test_support::HttpResult& result, const std::string& field,
                    const std::string& message_part) {
  EXPECT_EQ(result.status, 400) << result.body;
  const json body = result.json();
  EXPECT_EQ(body.value("field", json()), field) << result.body;
  EXPECT_NE(body.value("error", std::string()).find(message_part), std::string::npos)
      << result.body;
}

std::vector<std::string> instance_ids(HttpClient& client, const std::string& service) {
  std::vector<std::string> ids;
  const auto listed = client.get("/v1/services/" + service);
  EXPECT_EQ(listed.status, 200) << listed.body;
  const json body = listed.json();
  for (const auto& entry : body["instances"]) ids.push_back(entry["id"]);
  return ids;
}

TEST(AddressPolicyDaemon, RefusesDefaultRangesAndItsOwnEndpoints) {
  TempDir dir;
  Daemon daemon(dir);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient client(daemon.http_port());

  expect_refused(client.put("/v1/services/web/instances/metadata", instance("169.254.169.254", 80)),
                 "address", "169.254.0.0/16");
  expect_refused(client.put("/v1/services/web/instances/group", instance("::ffff:224.0.0.251", 53)),
                 "address", "224.0.0.0/4");
  expect_refused(
      client.put("/v1/services/web/instances/self", instance("127.0.0.1", daemon.http_port())),
      "port", "own endpoints");
  expect_refused(client.put("/v1/services/web/instances/dns",
                            {{"address", "127.0.0.1"},
                             {"port", 9},
                             {"check", {{"type", "tcp"}, {"port", daemon.dns_port()}}}}),
                 "check.port", "own endpoints");

  // Loopback stays allowed for development.
  EXPECT_EQ(client.put("/v1/services/web/instances/local", instance("127.0.0.1", 9)).status, 201);
  EXPECT_EQ(instance_ids(client, "web"), std::vector<std::string>{"local"});
}

TEST(AddressPolicyDaemon, ConfiguredRangesReplaceTheDefaults) {
  TempDir dir;
  std::ofstream(dir.file("policy.toml")) << "[http]\ndeny_ranges = [\"198.51.100.0/24\"]\n";
  Daemon daemon(
      dir, {.db_path = {}, .extra_args = {"--config", dir.file("policy.toml")}, .redis_port = {}});
  ASSERT_TRUE(daemon.start()) << daemon.log();
  HttpClient client(daemon.http_port());

  expect_refused(client.put("/v1/services/web/instances/doc", instance("198.51.100.7", 80)),
                 "address", "198.51.100.0/24");
  // The operator's list is the whole list: link-local is allowed now...
  EXPECT_EQ(client.put("/v1/services/web/instances/ll", instance("169.254.10.10", 80)).status, 201);
  // ...but the daemon's own endpoints are refused whatever the list says.
  expect_refused(
      client.put("/v1/services/web/instances/self", instance("127.0.0.1", daemon.http_port())),
      "port", "own endpoints");
  EXPECT_EQ(instance_ids(client, "web"), std::vector<std::string>{"ll"});
}

}  // namespace
