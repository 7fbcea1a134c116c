// The HTTP registration API as a plain request -> response function, free of
// sockets and of Beast, so every route and error is testable without a server and
// the transport (registry/http_server) only moves bytes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "registry/validation.h"
#include "store/balancing/load_balancing.h"
#include "store/lookup.h"
#include "store/registry_store.h"
#include "store/writer.h"

namespace registry {

class AccessControl;
class ReadWorkers;

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // path and optional query, e.g. /v1/services?x=1
  std::string content_type;
  std::string body;
  std::string authorization;  // the Authorization header, verbatim ("" when absent)
  std::string peer;           // the client's address ("198.51.100.7:53211"), for logs
};

struct HttpResponse {
  int status = 200;
  std::string body;                                          // JSON
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Allow, ...)
};

// Renders the error body every failure uses: {"error": message, "field": field|null}.
HttpResponse error_response(int status, std::string_view message, std::string_view field = {});

class Route;  // api.cpp: one request's path and access checks

class Api {
 public:
  using Respond = std::function<void(HttpResponse)>;
  // Supplies the "listeners"/"cache"/... parts of GET /v1/status from the other
  // components; the API adds its own database part.
  using StatusProvider = std::function<void(nlohmann::json& status)>;
  // Supplies the body of GET /v1/events (the health checker's removal history).
  using EventsProvider = std::function<nlohmann::json()>;
  // A last say on a registration that passed validation (the address deny-list):
  // an error refuses it with 400 naming the message and field.
  using RegistrationFilter =
      std::function<std::optional<ValidationError>(const store::Registration&)>;

  // Writes go through `writer`; `GET /v1/services/{service}` through `lookup`
  // (the cache, like DNS); the service list and status read `store` on the API's
  // own read threads (kReadThreads), never on the caller's.
  Api(store::RegistryStore& store, store::Writer& writer, store::ServiceLookup& lookup,
      CheckDefaults defaults, StatusProvider status_provider = {},
      EventsProvider events_provider = {});
  // Answers the reads still queued, then stops the read threads.
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  static constexpr std::size_t kReadThreads = 2;

  // Handles one request without blocking: it never waits for the database.
  // `respond` is called exactly once: at once for errors and for reads the cache
  // holds, from a cache or API read thread for reads of the database, from the
  // writer thread once a write is committed. The status provider runs on the
  // caller's thread, before handle() returns.
  void handle(const HttpRequest& request, Respond respond);

  // The strategy of services that registered none (GET /v1/resolve); the
  // daemon sets it to the DNS default so both agree.
  void set_default_strategy(store::LbStrategy strategy) { default_lb_ = strategy; }

  // Bearer-token access control; null (the default) lets every request through.
  // Call on the thread that calls handle(): a reload replaces the policy as a
  // whole, and a request in flight keeps the one it started with.
  void set_access_control(std::shared_ptr<const AccessControl> access) {
    access_control_ = std::move(access);
  }
  void set_registration_filter(RegistrationFilter filter) {
    registration_filter_ = std::move(filter);
  }

 private:
  // The routes, by kind; each returns false when the path is none of its own.
  bool route_read(const HttpRequest& request, const Route& route, Respond& respond);
  bool route_write(const HttpRequest& request, const Route& route, Respond& respond);
  void list_services(Respond respond);
  void get_service(const std::string& service, Respond respond);
  void resolve(const HttpRequest& request, const std::string& service, Respond respond);
  void status(Respond respond);
  void register_instance(const HttpRequest& request, std::string service, std::string id,
                         bool server_chose_id, Respond respond);
  void deregister_instance(std::string service, std::string id, Respond respond);
  void heartbeat(const HttpRequest& request, std::string service, std::string id, Respond respond);

  store::RegistryStore& store_;
  store::Writer& writer_;
  store::ServiceLookup& lookup_;
  CheckDefaults defaults_;
  StatusProvider status_provider_;
  EventsProvider events_provider_;
  store::LbStrategy default_lb_ = store::LbStrategy::round_robin;
  std::shared_ptr<const AccessControl> access_control_;
  RegistrationFilter registration_filter_;
  std::shared_ptr<store::lb::Balancer> balancer_ = std::make_shared<store::lb::Balancer>();
  // Last: destroyed first, so its tasks still find every member above.
  std::unique_ptr<ReadWorkers> reads_;
};

}  // namespace registry
