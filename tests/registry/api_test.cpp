// The API as a function: every route and error class without a socket. The same
// behaviours are exercised again over real HTTP in tests/integration.
#include "registry/api.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <future>
#include <nlohmann/json.hpp>

#include "store/service_cache.h"
#include "tests/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  test_support::TempDir dir;
  store::SqliteStore store{{dir.file("registry.db")}};
  store::ServiceCache cache{store, writer, {}};
  store::Writer writer{store, [this](const store::Writer::Commit& c) { cache.on_commit(c); }};
  registry::Api api{store, writer, cache, {30s, 2s, 3}};
  void SetUp() override { cache.start(); }
  void TearDown() override {
    writer.stop();
    cache.stop();
  }

  registry::HttpResponse call(std::string method, std::string target, std::string body = {},
                              std::string content_type = "application/json") {
    std::promise<registry::HttpResponse> promise;
    api.handle(
        {std::move(method), std::move(target), std::move(content_type), std::move(body), {}, {}},
        [&](registry::HttpResponse response) { promise.set_value(std::move(response)); });
    auto future = promise.get_future();
    EXPECT_EQ(future.wait_for(10s), std::future_status::ready);
    return future.get();
  }
  static json body_of(const registry::HttpResponse& response) { return json::parse(response.body); }
  // Every error response has exactly this shape.
  static void expect_error(const registry::HttpResponse& response, int status, const json& field) {
    EXPECT_EQ(response.status, status) << response.body;
    const auto body = body_of(response);
    EXPECT_TRUE(body.at("error").is_string());
    EXPECT_EQ(body.at("field"), field);
  }
  const std::string kInstance = R"({"address":"10.1.2.3","port":8080})";
};

TEST_F(ApiTest, RegisterCreatesThenUpdates) {
  auto created = call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(body_of(created)["id"], "a1");
  auto again = call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(again.status, 200);
  auto moved =
      call("PUT", "/v1/services/orders/instances/a1", R"({"address":"10.1.2.4","port":8080})");
  EXPECT_EQ(moved.status, 200);
  const auto listed = body_of(call("GET", "/v1/services/orders"));
  ASSERT_EQ(listed["instances"].size(), 1u);
  EXPECT_EQ(listed["instances"][0]["address"], "10.1.2.4");
}

TEST_F(ApiTest, NamesAreCaseInsensitiveAndStoredLowerCase) {
  EXPECT_EQ(call("PUT", "/v1/services/Orders/instances/A1", kInstance).status, 201);
  const auto listed = body_of(call("GET", "/v1/services/ORDERS"));
  EXPECT_EQ(listed["service"], "orders");
  EXPECT_EQ(listed["instances"][0]["id"], "a1");
}

TEST_F(ApiTest, PostPicksAnIdThatIsADnsLabel) {
  auto created = call("POST", "/v1/services/orders/instances", kInstance);
  EXPECT_EQ(created.status, 201);
  const std::string id = body_of(created)["id"];
  EXPECT_TRUE(registry::normalize_label(id)) << id;
  EXPECT_EQ(body_of(call("GET", "/v1/services/orders"))["instances"][0]["id"], id);
}

TEST_F(ApiTest, DeregisterRemovesAndThenIsNotFound) {
  call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(call("DELETE", "/v1/services/orders/instances/a1", "", "").status, 200);
  expect_error(call("DELETE", "/v1/services/orders/instances/a1", "", ""), 404, "id");
  expect_error(call("GET", "/v1/services/orders"), 404, "service");
}

TEST_F(ApiTest, HeartbeatRecordsLoad) {
  call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(call("PUT", "/v1/services/orders/instances/a1/heartbeat", "", "").status, 200);
  EXPECT_EQ(call("PUT", "/v1/services/orders/instances/a1/heartbeat", R"({"load": 12.5})").status,
            200);
  const auto instance = body_of(call("GET", "/v1/services/orders"))["instances"][0];
  EXPECT_EQ(instance["load"], 12.5);
  EXPECT_TRUE(instance["last_heartbeat_at"].is_string());
  expect_error(call("PUT", "/v1/services/orders/instances/zz/heartbeat", "", ""), 404, "id");
  expect_error(call("PUT", "/v1/services/orders/instances/a1/heartbeat", R"({"load": -3})"), 400,
               "load");
}

TEST_F(ApiTest, ListsServicesWithCounts) {
  call("PUT", "/v1/services/orders/instances/a1", kInstance);
  call("PUT", "/v1/services/orders/instances/a2", kInstance);
  call("PUT", "/v1/services/payments/instances/p1", kInstance);
  const auto services = body_of(call("GET", "/v1/services"))["services"];
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0]["name"], "orders");
  EXPECT_EQ(services[0]["instances"], 2);
  EXPECT_EQ(services[1]["name"], "payments");
  EXPECT_EQ(services[1]["instances"], 1);
}

TEST_F(ApiTest, ErrorsNameTheProblemAndChangeNothing) {
  expect_error(call("PUT", "/v1/services/orders/instances/a1", R"({"address":"x","port":1})"), 400,
               "address");
  expect_error(call("PUT", "/v1/services/orders/instances/a1", "{nope"), 400, "body");
  expect_error(call("PUT", "/v1/services/orders/instances/a1", kInstance, "text/plain"), 415,
               "Content-Type");
  expect_error(call("PUT", "/v1/services/bad_name/instances/a1", kInstance), 400, "service");
  expect_error(call("PUT", "/v1/services/orders/instances/-a", kInstance), 400, "id");
  expect_error(call("GET", "/v1/nothing"), 404, nullptr);
  expect_error(call("GET", "/v1/services/orders/instances/a1/extra/deep"), 404, nullptr);
  auto wrong_method = call("PATCH", "/v1/services/orders/instances/a1", kInstance);
  expect_error(wrong_method, 405, nullptr);
  ASSERT_FALSE(wrong_method.headers.empty());
  EXPECT_EQ(wrong_method.headers[0].first, "Allow");
  EXPECT_EQ(wrong_method.headers[0].second, "PUT, DELETE");
  // Nothing above reached the database.
  EXPECT_TRUE(store.list_services().empty());
  EXPECT_EQ(writer.stats().mutations, 0u);
}

TEST_F(ApiTest, ContentTypeParametersAreAccepted) {
  EXPECT_EQ(
      call("PUT", "/v1/services/orders/instances/a1", kInstance, "Application/JSON; charset=utf-8")
          .status,
      201);
}

TEST_F(ApiTest, StatusReportsTheDatabase) {
  const auto status = call("GET", "/v1/status");
  EXPECT_EQ(status.status, 200);
  const auto body = body_of(status);
  EXPECT_EQ(body["status"], "serving");
  EXPECT_EQ(body["database"]["status"], "ok");
  EXPECT_EQ(body["database"]["schema_version"], store::SqliteStore::kLatestSchemaVersion);
}

TEST_F(ApiTest, DatabaseFailureIsA503AndNothingIsAcknowledged) {
  SQLite::Database locker(dir.file("registry.db"), SQLite::OPEN_READWRITE);
  locker.exec("PRAGMA busy_timeout = 0");
  locker.exec("BEGIN IMMEDIATE");
  // The store waits its busy timeout (2 s by default) before giving up.
  expect_error(call("PUT", "/v1/services/orders/instances/a1", kInstance), 503, nullptr);
  locker.exec("ROLLBACK");
  expect_error(call("GET", "/v1/services/orders"), 404, "service");
}

}  // namespace
