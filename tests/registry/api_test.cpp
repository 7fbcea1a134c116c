// The API as a function: every route and error class without a socket. The same
// behaviours are exercised again over real HTTP in tests/integration.
#include "registry/api.h"
#include "registry/auth.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/cache/service_cache.h"
#include "store/sqlite/sqlite_store.h"
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
                              std::string content_type = "application/json",
                              std::string authorization = {}) {
    std::promise<registry::HttpResponse> promise;
    api.handle({std::move(method), std::move(target), std::move(content_type), std::move(body),
                std::move(authorization), "192.0.2.1:40000"},
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
  const std::string kInstance = R"({"address":"127.1.2.3","port":8080})";
};

TEST_F(ApiTest, RegisterCreatesThenUpdates) {
  auto created = call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(body_of(created)["id"], "a1");
  auto again = call("PUT", "/v1/services/orders/instances/a1", kInstance);
  EXPECT_EQ(again.status, 200);
  auto moved =
      call("PUT", "/v1/services/orders/instances/a1", R"({"address":"127.1.2.4","port":8080})");
  EXPECT_EQ(moved.status, 200);
  const auto listed = body_of(call("GET", "/v1/services/orders"));
  ASSERT_EQ(listed["instances"].size(), 1u);
  EXPECT_EQ(listed["instances"][0]["address"], "127.1.2.4");
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
  // Messages that quote the request must survive bytes that are not UTF-8 (a
  // throwing json::dump here once took the daemon down; found by fuzzing).
  expect_error(call("GET", "/v1/\xdcx"), 404, nullptr);
  expect_error(call("GET", "/v1/resolve/orders?\xff=1"), 400, "\xef\xbf\xbd");
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

// The service list and the status read SQLite on the API's read threads, never
// on the caller's (the HTTP event loop, where a slow read would hold up every
// other session): their answers come from another thread.
TEST_F(ApiTest, DatabaseReadsRunOffTheCallersThread) {
  ASSERT_EQ(call("PUT", "/v1/services/orders/instances/a1", kInstance).status, 201);
  for (const char* target : {"/v1/services", "/v1/status"}) {
    std::promise<std::thread::id> answered_on;
    api.handle({"GET", target, "", "", "", "192.0.2.1:40000"},
               [&answered_on](registry::HttpResponse response) {
                 EXPECT_EQ(response.status, 200) << response.body;
                 answered_on.set_value(std::this_thread::get_id());
               });
    auto future = answered_on.get_future();
    ASSERT_EQ(future.wait_for(10s), std::future_status::ready) << target;
    EXPECT_NE(future.get(), std::this_thread::get_id()) << target;
  }
}

TEST_F(ApiTest, DuplicatedKeysAre400NamingTheField) {
  const auto refused = call("PUT", "/v1/services/orders/instances/a1",
                            R"({"address":"127.1.2.3","port":80,"port":81})");
  expect_error(refused, 400, "port");
  EXPECT_EQ(body_of(refused)["error"], "duplicate key \"port\"");
  expect_error(call("PUT", "/v1/services/orders/instances/a1/heartbeat", R"({"load":1,"load":2})"),
               400, "load");
  EXPECT_EQ(writer.stats().mutations, 0u);
}

// The list's JSON, exactly: one object per service with instances, by name.
TEST_F(ApiTest, ServiceListBody) {
  call("PUT", "/v1/services/payments/instances/p1", kInstance);
  call("PUT", "/v1/services/orders/instances/a1", kInstance);
  call("PUT", "/v1/services/orders/instances/a2", kInstance);
  call("PUT", "/v1/services/gone/instances/g1", kInstance);
  call("DELETE", "/v1/services/gone/instances/g1", "", "");
  EXPECT_EQ(call("GET", "/v1/services").body,
            R"({"services":[{"instances":2,"name":"orders","version":2},)"
            R"({"instances":1,"name":"payments","version":1}]})");
}

TEST_F(ApiTest, RegistrationFilterRefusesWithItsMessageAndField) {
  api.set_registration_filter(
      [](const store::Registration& registration) -> std::optional<registry::ValidationError> {
        if (registration.port == 1) return registry::ValidationError{"port 1 is refused", "port"};
        return std::nullopt;
      });
  const auto refused =
      call("PUT", "/v1/services/orders/instances/a1", R"({"address":"127.1.2.3","port":1})");
  expect_error(refused, 400, "port");
  EXPECT_EQ(body_of(refused)["error"], "port 1 is refused");
  expect_error(call("POST", "/v1/services/orders/instances", R"({"address":"127.1.2.3","port":1})"),
               400, "port");
  EXPECT_TRUE(store.list_services().empty());
  EXPECT_EQ(writer.stats().mutations, 0u);
  // The filter sees only valid registrations, and lets the others through.
  expect_error(call("PUT", "/v1/services/orders/instances/a1", R"({"address":"x","port":1})"), 400,
               "address");
  EXPECT_EQ(call("PUT", "/v1/services/orders/instances/a1", kInstance).status, 201);
}

// The API with bearer tokens: orders-token may change order-* services, the
// admin token everything.
class ApiAuthTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    protect(registry::ReadAccess::open);
  }
  void protect(registry::ReadAccess read_access) {
    api.set_access_control(std::make_shared<const registry::AccessControl>(
        registry::TokenStore::parse(kOrdersToken + " order-*\n" + kAdminToken + " *\n", "tokens"),
        read_access));
  }
  registry::HttpResponse call_as(const std::string& token, std::string method, std::string target,
                                 std::string body = {}) {
    const std::string content_type = body.empty() ? "" : "application/json";
    return call(std::move(method), std::move(target), std::move(body), content_type,
                token.empty() ? "" : "Bearer " + token);
  }
  static std::string header(const registry::HttpResponse& response, const std::string& name) {
    for (const auto& [key, value] : response.headers) {
      if (key == name) return value;
    }
    return "";
  }
  // Registers payments/p1 with the admin token, to have something to protect.
  void register_payments() {
    ASSERT_EQ(call_as(kAdminToken, "PUT", "/v1/services/payments/instances/p1", kInstance).status,
              201);
    mutations_before = writer.stats().mutations;
  }
  // payments/p1 is as register_payments() left it, and no write reached the writer.
  void expect_payments_unchanged() {
    EXPECT_EQ(writer.stats().mutations, mutations_before);
    const auto instances = store.read_service("payments").instances;
    ASSERT_EQ(instances.size(), 1u);
    EXPECT_EQ(instances[0].registration.address.to_string(), "127.1.2.3");
    EXPECT_FALSE(instances[0].last_heartbeat_at);
    EXPECT_FALSE(instances[0].load);
  }

  const std::string kOrdersToken = "orders-0123456789abcdef";
  const std::string kAdminToken = "admin-0123456789abcdef";
  std::uint64_t mutations_before = 0;
};

TEST_F(ApiAuthTest, WritesWithoutATokenAre401AndChangeNothing) {
  register_payments();
  const std::vector<std::pair<std::string, std::string>> writes = {
      {"PUT", "/v1/services/payments/instances/p1"},
      {"PUT", "/v1/services/payments/instances/p2"},
      {"POST", "/v1/services/payments/instances"},
      {"DELETE", "/v1/services/payments/instances/p1"},
      {"PUT", "/v1/services/payments/instances/p1/heartbeat"},
  };
  for (const auto& [method, target] : writes) {
    const std::string body = method == "DELETE" ? "" : R"({"address":"127.9.9.9","port":1})";
    const auto missing = call_as("", method, target, body);
    expect_error(missing, 401, "Authorization");
    EXPECT_EQ(header(missing, "WWW-Authenticate"), R"(Bearer realm="discoveryd")");

    const auto unknown = call_as("not-a-configured-token", method, target, body);
    expect_error(unknown, 401, "Authorization");
    EXPECT_EQ(header(unknown, "WWW-Authenticate"),
              R"(Bearer realm="discoveryd", error="invalid_token")");

    expect_error(call(method, target, body, "application/json", "Basic dXNlcjpwYXNzd29yZA=="), 401,
                 "Authorization");
    // Authentication comes first: an invalid body or name does not tell anything.
    std::string bad_target = target;
    bad_target.replace(bad_target.find("payments"), 8, "bad_name");
    expect_error(call_as("", method, bad_target, "{nope"), 401, "Authorization");
  }
  expect_payments_unchanged();
  EXPECT_EQ(store.list_services().size(), 1u);
}

TEST_F(ApiAuthTest, AScopedTokenCannotChangeAnotherService) {
  register_payments();
  const std::string moved = R"({"address":"127.9.9.9","port":8080})";
  for (const auto& [method, target, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PUT", "/v1/services/payments/instances/p1", moved},
           {"PUT", "/v1/services/Payments/instances/p2", moved},
           {"POST", "/v1/services/payments/instances", moved},
           {"DELETE", "/v1/services/payments/instances/p1", ""},
           {"PUT", "/v1/services/payments/instances/p1/heartbeat", R"({"load": 3})"},
           // The scope is checked before the id and the body are.
           {"PUT", "/v1/services/payments/instances/-bad-", "{nope"},
       }) {
    const auto refused = call_as(kOrdersToken, method, target, body);
    expect_error(refused, 403, "service");
    EXPECT_EQ(body_of(refused)["error"], "token not allowed to change service payments");
  }
  // "order-*" is a prefix with the dash: "orders" is another service.
  expect_error(call_as(kOrdersToken, "PUT", "/v1/services/orders/instances/o1", kInstance), 403,
               "service");
  expect_payments_unchanged();
  EXPECT_EQ(store.list_services().size(), 1u);
}

TEST_F(ApiAuthTest, AScopedTokenChangesItsOwnServices) {
  const std::string& token = kOrdersToken;
  EXPECT_EQ(call_as(token, "PUT", "/v1/services/order-service/instances/a1", kInstance).status,
            201);
  EXPECT_EQ(call_as(token, "PUT", "/v1/services/Order-Service/instances/a1", kInstance).status,
            200);
  EXPECT_EQ(call_as(token, "POST", "/v1/services/order-history/instances", kInstance).status, 201);
  EXPECT_EQ(
      call_as(token, "PUT", "/v1/services/order-service/instances/a1/heartbeat", R"({"load":2})")
          .status,
      200);
  EXPECT_EQ(call_as(token, "DELETE", "/v1/services/order-service/instances/a1").status, 200);
  // Validation still applies after authorization.
  expect_error(call_as(token, "PUT", "/v1/services/order-service/instances/a1", "{nope"), 400,
               "body");
  const auto services = store.list_services();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].service, "order-history");
}

TEST_F(ApiAuthTest, TheAdminTokenChangesEverything) {
  for (const std::string service : {"payments", "order-service", "orders", "x"}) {
    const std::string instance = "/v1/services/" + service + "/instances/i1";
    EXPECT_EQ(call_as(kAdminToken, "PUT", instance, kInstance).status, 201) << service;
    EXPECT_EQ(call_as(kAdminToken, "PUT", instance + "/heartbeat").status, 200) << service;
    EXPECT_EQ(call_as(kAdminToken, "DELETE", instance).status, 200) << service;
  }
  EXPECT_EQ(call_as(kAdminToken, "POST", "/v1/services/x/instances", kInstance).status, 201);
  EXPECT_EQ(store.list_services().size(), 1u);
}

TEST_F(ApiAuthTest, ReadsAreOpenByDefault) {
  register_payments();
  EXPECT_EQ(call_as("", "GET", "/v1/services").status, 200);
  EXPECT_EQ(call_as("", "GET", "/v1/services/payments").status, 200);
  EXPECT_EQ(call_as("", "GET", "/v1/resolve/payments").status, 200);
  EXPECT_EQ(call_as("", "GET", "/v1/status").status, 200);
  EXPECT_EQ(call_as("", "GET", "/v1/events").status, 200);
}

TEST_F(ApiAuthTest, ReadAccessTokenProtectsEveryGetRoute) {
  register_payments();
  protect(registry::ReadAccess::token);
  for (const std::string target :
       {"/v1/services", "/v1/services/payments", "/v1/resolve/payments", "/v1/status", "/v1/events",
        "/v1/services/bad_name", "/v1/resolve/payments?bogus=1"}) {
    const auto missing = call_as("", "GET", target);
    expect_error(missing, 401, "Authorization");
    EXPECT_EQ(header(missing, "WWW-Authenticate"), R"(Bearer realm="discoveryd")");
    EXPECT_EQ(body_of(missing).size(), 2u) << target << " leaked " << missing.body;
    expect_error(call_as("unknown-token-0123456789", "GET", target), 401, "Authorization");
  }
  // Any known token may read, scoped or not.
  const auto read = call_as(kOrdersToken, "GET", "/v1/services/payments");
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(body_of(read)["instances"][0]["id"], "p1");
  EXPECT_EQ(call_as(kOrdersToken, "GET", "/v1/services").status, 200);
  EXPECT_EQ(call_as(kAdminToken, "GET", "/v1/resolve/payments").status, 200);
  EXPECT_EQ(call_as(kAdminToken, "GET", "/v1/status").status, 200);
}

TEST_F(ApiAuthTest, UnknownRoutesAndWrongMethodsAnswerWithoutAToken) {
  protect(registry::ReadAccess::token);
  expect_error(call_as("", "GET", "/v1/nothing"), 404, nullptr);
  expect_error(call_as("", "PATCH", "/v1/services/payments/instances/p1"), 405, nullptr);
  expect_error(call_as("", "POST", "/v1/services"), 405, nullptr);
}

TEST_F(ApiAuthTest, ANullPolicyTurnsAuthenticationOff) {
  api.set_access_control(nullptr);
  EXPECT_EQ(call("PUT", "/v1/services/payments/instances/p1", kInstance).status, 201);
}

}  // namespace
