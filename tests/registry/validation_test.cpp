#include "registry/validation.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const registry::CheckDefaults kDefaults{30s, 2s, 3};

std::variant<store::Registration, registry::ValidationError> parse(const json& body) {
  return registry::parse_registration(body.dump(), "orders", "a1", kDefaults);
}

// Asserts the body is rejected and returns the offending field.
std::string rejected_field(const json& body) {
  auto result = parse(body);
  auto* error = std::get_if<registry::ValidationError>(&result);
  if (!error) {
    ADD_FAILURE() << "accepted: " << body.dump();
    return {};
  }
  EXPECT_FALSE(error->message.empty());
  return error->field;
}

json valid_body() {
  return {{"address", "10.1.2.3"},
          {"port", 8080},
          {"tags", {"v2"}},
          {"meta", {{"zone", "a"}}},
          {"weight", 10},
          {"check",
           {{"type", "http"},
            {"path", "/health"},
            {"interval", "30s"},
            {"timeout", "2s"},
            {"failures", 3}}}};
}

TEST(Labels, NormalizesToLowerCase) {
  EXPECT_EQ(registry::normalize_label("Order-Service"), "order-service");
  EXPECT_EQ(registry::normalize_label("a"), "a");
  EXPECT_EQ(registry::normalize_label(std::string(63, 'x')), std::string(63, 'x'));
}

TEST(Labels, RejectsWhatIsNotADnsLabel) {
  for (const std::string& text : {std::string(), std::string(64, 'x'), std::string("-a"),
                                  std::string("a-"), std::string("a_b"), std::string("a.b"),
                                  std::string("a b"), std::string("ü"), std::string("a\0b", 3)}) {
    EXPECT_FALSE(registry::normalize_label(text)) << text;
  }
}

TEST(Registration, AcceptsTheDocumentedExample) {
  auto result = parse(valid_body());
  ASSERT_TRUE(std::holds_alternative<store::Registration>(result));
  const auto& registration = std::get<store::Registration>(result);
  EXPECT_EQ(registration.service, "orders");
  EXPECT_EQ(registration.id, "a1");
  EXPECT_EQ(registration.address.to_string(), "10.1.2.3");
  EXPECT_EQ(registration.port, 8080);
  EXPECT_EQ(registration.tags, std::vector<std::string>{"v2"});
  EXPECT_EQ(registration.meta.at("zone"), "a");
  EXPECT_EQ(registration.weight, 10);
  EXPECT_EQ(registration.check.type, store::CheckType::http);
  EXPECT_EQ(registration.check.path, "/health");
  EXPECT_EQ(registration.check.interval, 30s);
  EXPECT_EQ(registration.check.timeout, 2s);
  EXPECT_EQ(registration.check.failures, 3u);
}

TEST(Registration, MinimalBodyGetsDefaults) {
  auto result = parse({{"address", "::1"}, {"port", 1}});
  ASSERT_TRUE(std::holds_alternative<store::Registration>(result));
  const auto& registration = std::get<store::Registration>(result);
  EXPECT_EQ(registration.weight, 1);
  EXPECT_EQ(registration.check.type, store::CheckType::tcp);  // the documented default
  EXPECT_EQ(registration.check.interval, 0ms);                // "use the daemon default"
  EXPECT_TRUE(registration.tags.empty());
}

TEST(Registration, TagsAreNormalizedSortedAndUnique) {
  auto body = valid_body();
  body["tags"] = {"V2", "canary", "v2"};
  const auto registration = std::get<store::Registration>(parse(body));
  EXPECT_EQ(registration.tags, (std::vector<std::string>{"canary", "v2"}));
}

TEST(Registration, TtlCheckNeedsTtl) {
  auto body = valid_body();
  body["check"] = {{"type", "ttl"}, {"ttl", "15s"}};
  const auto registration = std::get<store::Registration>(parse(body));
  EXPECT_EQ(registration.check.type, store::CheckType::ttl);
  EXPECT_EQ(registration.check.ttl, 15s);
  body["check"] = {{"type", "ttl"}};
  EXPECT_EQ(rejected_field(body), "check.ttl");
}

TEST(Registration, RejectsEachInvalidFieldByName) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& b) { b.erase("address"); }, "address"},
      {[](json& b) { b["address"] = "orders.example.com"; }, "address"},
      {[](json& b) { b["address"] = 10; }, "address"},
      {[](json& b) { b["address"] = "0.0.0.0"; }, "address"},
      {[](json& b) { b.erase("port"); }, "port"},
      {[](json& b) { b["port"] = 0; }, "port"},
      {[](json& b) { b["port"] = 65536; }, "port"},
      {[](json& b) { b["port"] = "8080"; }, "port"},
      {[](json& b) { b["port"] = 80.5; }, "port"},
      {[](json& b) { b["port"] = 18446744073709551615ULL; }, "port"},
      {[](json& b) { b["weight"] = 0; }, "weight"},
      {[](json& b) { b["weight"] = 65536; }, "weight"},
      {[](json& b) { b["tags"] = "v2"; }, "tags"},
      {[](json& b) {
         b["tags"] = {"ok", "not ok"};
       },
       "tags[1]"},
      {[](json& b) {
         b["meta"] = {{"zone", 1}};
       },
       "meta.zone"},
      {[](json& b) { b["meta"] = json::array(); }, "meta"},
      {[](json& b) {
         b["meta"] = {{"k", std::string(513, 'v')}};
       },
       "meta.k"},
      {[](json& b) { b["wieght"] = 3; }, "wieght"},
      {[](json& b) { b["check"]["type"] = "icmp"; }, "check.type"},
      {[](json& b) { b["check"]["interval"] = "30"; }, "check.interval"},
      {[](json& b) { b["check"]["interval"] = "50ms"; }, "check.interval"},
      {[](json& b) { b["check"]["interval"] = "2h"; }, "check.interval"},
      {[](json& b) { b["check"]["timeout"] = "30s"; }, "check.timeout"},
      {[](json& b) { b["check"]["path"] = "health"; }, "check.path"},
      {[](json& b) { b["check"]["path"] = "/a b"; }, "check.path"},
      {[](json& b) { b["check"]["path"] = "/a\r\nHost: evil"; }, "check.path"},
      {[](json& b) { b["check"]["failures"] = 0; }, "check.failures"},
      {[](json& b) { b["check"]["bogus"] = 1; }, "check.bogus"},
      {[](json& b) { b["check"]["port"] = 70000; }, "check.port"},
      {[](json& b) {
         b["check"] = {{"type", "tcp"}, {"path", "/x"}};
       },
       "check.path"},
      {[](json& b) {
         b["check"] = {{"type", "tcp"}, {"ttl", "10s"}};
       },
       "check.ttl"},
      // A timeout not shorter than the default interval (30s) is caught too.
      {[](json& b) {
         b["check"] = {{"type", "tcp"}, {"timeout", "45s"}};
       },
       "check.timeout"},
      // An interval not longer than the default timeout (2s).
      {[](json& b) {
         b["check"] = {{"type", "tcp"}, {"interval", "1s"}};
       },
       "check.interval"},
  };
  for (const auto& [mutate, field] : cases) {
    json body = valid_body();
    mutate(body);
    EXPECT_EQ(rejected_field(body), field) << body.dump();
  }
}

TEST(Registration, RejectsMalformedJsonAndNonObjects) {
  auto result = registry::parse_registration("{\"address\":", "orders", "a1", kDefaults);
  ASSERT_TRUE(std::holds_alternative<registry::ValidationError>(result));
  EXPECT_EQ(std::get<registry::ValidationError>(result).field, "body");
  EXPECT_EQ(rejected_field(json::array()), "body");
}

TEST(Heartbeat, AcceptsEmptyOrLoad) {
  EXPECT_EQ(std::get<std::optional<double>>(registry::parse_heartbeat("")), std::nullopt);
  EXPECT_EQ(std::get<std::optional<double>>(registry::parse_heartbeat("{}")), std::nullopt);
  EXPECT_EQ(std::get<std::optional<double>>(registry::parse_heartbeat(R"({"load": 12.5})")), 12.5);
}

TEST(Heartbeat, RejectsBadLoad) {
  for (const char* body : {R"({"load": -1})", R"({"load": "high"})", R"({"lod": 1})", "[1]", "{",
                           R"({"load": 1e999})"}) {
    EXPECT_TRUE(std::holds_alternative<registry::ValidationError>(registry::parse_heartbeat(body)))
        << body;
  }
}

}  // namespace

namespace {

TEST(Registration, AcceptsEveryLoadBalancingStrategyAndRejectsOthers) {
  for (const auto& [text, strategy] : std::vector<std::pair<std::string, store::LbStrategy>>{
           {"round_robin", store::LbStrategy::round_robin},
           {"weighted", store::LbStrategy::weighted},
           {"least_loaded", store::LbStrategy::least_loaded},
           {"random", store::LbStrategy::random}}) {
    json body = valid_body();
    body["lb"] = text;
    auto result = parse(body);
    ASSERT_TRUE(std::holds_alternative<store::Registration>(result)) << text;
    EXPECT_EQ(std::get<store::Registration>(result).lb, strategy);
  }
  EXPECT_FALSE(std::get<store::Registration>(parse(valid_body())).lb);
  for (const json& bad : {json("fastest"), json(""), json(1), json(nullptr)}) {
    json body = valid_body();
    body["lb"] = bad;
    EXPECT_EQ(rejected_field(body), "lb") << bad.dump();
  }
}

// nlohmann would keep the last of two equal keys; the parser refuses the body
// instead, naming the key by its path, at any depth.
TEST(Registration, RejectsDuplicatedKeysByPath) {
  const auto error_of = [](std::string_view text) {
    auto result = registry::parse_registration(text, "orders", "a1", kDefaults);
    auto* error = std::get_if<registry::ValidationError>(&result);
    return error ? *error : registry::ValidationError{"accepted", ""};
  };
  const auto port = error_of(R"({"address":"10.1.2.3","port":80,"port":81})");
  EXPECT_EQ(port.field, "port");
  EXPECT_EQ(port.message, "duplicate key \"port\"");
  // Escapes are undone before keys are compared.
  EXPECT_EQ(error_of(R"({"address":"10.1.2.3","port":80,"p\u006frt":81})").field, "port");
  EXPECT_EQ(error_of(R"({"address":"10.1.2.3","port":80,
      "check":{"type":"tcp","interval":"10s","interval":"20s"}})")
                .field,
            "check.interval");
  EXPECT_EQ(error_of(R"({"address":"10.1.2.3","port":80,"meta":{"zone":"a","zone":"b"}})").field,
            "meta.zone");
  // The first repeat is named, even when a later one is elsewhere.
  EXPECT_EQ(error_of(R"({"meta":{"a":"1","a":"2"},"address":"10.1.2.3","port":80,"port":1})").field,
            "meta.a");
  // Inside arrays (nothing accepts an object there, but the path still says where).
  EXPECT_EQ(error_of(R"({"address":"10.1.2.3","port":80,"tags":["a",{"x":1,"x":2}]})").field,
            "tags[1].x");
  // Equal keys in different objects are not duplicates; malformed JSON stays malformed.
  EXPECT_TRUE(std::holds_alternative<store::Registration>(registry::parse_registration(
      R"({"address":"10.1.2.3","port":80,"meta":{"port":"x"},"check":{"type":"tcp","port":81}})",
      "orders", "a1", kDefaults)));
  EXPECT_EQ(error_of(R"({"port":80,"port":81)").field, "body");
}

TEST(Heartbeat, RejectsDuplicatedKeys) {
  auto result = registry::parse_heartbeat(R"({"load":1,"load":2})");
  ASSERT_TRUE(std::holds_alternative<registry::ValidationError>(result));
  EXPECT_EQ(std::get<registry::ValidationError>(result).field, "load");
  EXPECT_EQ(std::get<registry::ValidationError>(result).message, "duplicate key \"load\"");
}

}  // namespace
