#include "registry/api.h"
#include "registry/auth.h"
#include "registry/read_workers.h"
#include "store/logging.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <random>

#include "store/balancing/instance_selection.h"
#include "store/duration.h"

namespace registry {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("registry");
}

std::vector<std::string_view> split_path(std::string_view target) {
  const auto query = target.find('?');
  std::string_view path = target.substr(0, query);
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

HttpResponse json_response(int status, const json& body) {
  // Error messages quote the request (its path, a query key), which may be any
  // bytes: replace invalid UTF-8 instead of letting dump() throw (found by fuzzing).
  return HttpResponse{status, body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

HttpResponse method_not_allowed(std::string allowed) {
  auto response = error_response(405, "method not allowed; allowed: " + allowed);
  response.headers.emplace_back("Allow", std::move(allowed));
  return response;
}

bool is_json_content_type(std::string_view content_type) {
  const auto semicolon = content_type.find(';');
  std::string media(content_type.substr(0, semicolon));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  std::transform(media.begin(), media.end(), media.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return media == "application/json";
}

json optional_time(const std::optional<store::TimePoint>& time) {
  return time ? json(store::format_timestamp(*time)) : json(nullptr);
}

json check_to_json(const store::HealthCheck& check) {
  json result = {{"type", store::to_string(check.type)}};
  if (check.type == store::CheckType::http) result["path"] = check.path;
  if (check.port != 0) result["port"] = check.port;
  if (check.interval.count()) result["interval"] = store::format_duration(check.interval);
  if (check.timeout.count()) result["timeout"] = store::format_duration(check.timeout);
  if (check.ttl.count()) result["ttl"] = store::format_duration(check.ttl);
  if (check.failures) result["failures"] = check.failures;
  return result;
}

std::string_view health_status(const store::Instance& instance) {
  if (instance.consecutive_failures > 0) return "failing";
  if (!instance.last_check_at && !instance.last_heartbeat_at) return "unknown";
  return "passing";
}

json instance_to_json(const store::Instance& instance) {
  const store::Registration& reg = instance.registration;
  return {
      {"id", reg.id},
      {"address", reg.address.to_string()},
      {"port", reg.port},
      {"tags", reg.tags},
      {"meta", reg.meta},
      {"weight", reg.weight},
      {"check", check_to_json(reg.check)},
      {"registered_at", store::format_timestamp(instance.registered_at)},
      {"updated_at", store::format_timestamp(instance.updated_at)},
      {"last_check_at", optional_time(instance.last_check_at)},
      {"last_heartbeat_at", optional_time(instance.last_heartbeat_at)},
      {"consecutive_failures", instance.consecutive_failures},
      {"load", instance.load ? json(*instance.load) : json(nullptr)},
      {"status", health_status(instance)},
  };
}

std::string random_instance_id() {
  // 64 random bits: collisions are out of reach, and the id stays a DNS label.
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return fmt::format("{:016x}", generator());
}

// Writes answer 503 when the database refused them: the client may retry, and
// nothing was changed.
// The store names the cause ("database full: ...", "database busy: ..."); the
// Retry-After tells well-behaved clients when to try again.
HttpResponse write_failed(const store::MutationResult& result) {
  auto response = error_response(503, result.error.starts_with("database ")
                                          ? result.error
                                          : "database unavailable: " + result.error);
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

// A refused request: 401 when no known token came with it, 403 when the token
// may not change the service. Logged with the client and the service, never the
// token (a known one is named by its line in the token file). `subject` is what
// the request was for, as logged ("service=payments").
HttpResponse access_denied(const AccessDecision& decision, const HttpRequest& request,
                           std::string_view action, std::string_view subject,
                           std::string_view service = {}) {
  constexpr std::string_view kChallenge = "Bearer realm=\"discoveryd\"";
  const auto origin = decision.scope ? " token=" + decision.scope->origin : std::string();
  HttpResponse response;
  std::string challenge(kChallenge);
  switch (decision.access) {
    case Access::granted:
    case Access::missing_token:
      store::component_logger("auth")->warn("denied {} {} peer={} reason=\"no bearer token\"",
                                            action, subject, request.peer);
      response = error_response(401, "bearer token required", "Authorization");
      break;
    case Access::invalid_token:
      store::component_logger("auth")->warn("denied {} {} peer={} reason=\"invalid bearer token\"",
                                            action, subject, request.peer);
      response = error_response(401, "invalid bearer token", "Authorization");
      challenge += ", error=\"invalid_token\"";
      break;
    case Access::out_of_scope:
      store::component_logger("auth")->warn("denied {} {} peer={} reason=\"out of scope\"{}",
                                            action, subject, request.peer, origin);
      response = error_response(403, fmt::format("token not allowed to change service {}", service),
                                "service");
      challenge += ", error=\"insufficient_scope\"";
      break;
  }
  response.headers.emplace_back("WWW-Authenticate", std::move(challenge));
  return response;
}

}  // namespace

HttpResponse error_response(int status, std::string_view message, std::string_view field) {
  json body = {{"error", message}, {"field", field.empty() ? json(nullptr) : json(field)}};
  return json_response(status, body);
}

Api::Api(store::RegistryStore& store, store::Writer& writer, store::ServiceLookup& lookup,
         CheckDefaults defaults, StatusProvider status_provider, EventsProvider events_provider)
    : store_(store),
      writer_(writer),
      lookup_(lookup),
      defaults_(defaults),
      status_provider_(std::move(status_provider)),
      events_provider_(std::move(events_provider)),
      reads_(std::make_unique<ReadWorkers>(kReadThreads)) {}

Api::~Api() = default;

// One request being routed: its path, the access policy it is judged by (even
// if a reload replaces the policy meanwhile) and the checks every route shares.
// Each check that fails has already answered the request.
//
// Access control, when on: an unknown route (404) and a wrong method (405) are
// answered to anyone, as they reveal only the documented shape of the API. A
// protected read authenticates before anything else, so even a malformed service
// name gets a 401. A write authenticates (401), normalises the service in its
// path (400; scopes match normalised names), then checks the token's scope
// (403), before the id, the body or the database are looked at.
class Route {
 public:
  Route(const HttpRequest& request, std::shared_ptr<const AccessControl> access,
        Api::Respond& respond)
      : request_(request),
        access_(std::move(access)),
        respond_(respond),
        segments_(split_path(request.target)) {}

  const std::string& method() const { return request_.method; }
  bool is(std::initializer_list<std::string_view> pattern) const {
    if (segments_.size() != pattern.size()) return false;
    auto segment = segments_.begin();
    for (std::string_view part : pattern) {
      if (part != "*" && part != *segment) return false;
      ++segment;
    }
    return true;
  }
  // False (405 sent) unless the method is one of `allowed` ("GET", "PUT, DELETE").
  bool allows(std::initializer_list<std::string_view> methods, std::string allowed) const {
    if (std::find(methods.begin(), methods.end(), method()) != methods.end()) return true;
    respond_(method_not_allowed(std::move(allowed)));
    return false;
  }
  // Path parameters are DNS labels; anything else is a client error naming the field.
  std::optional<std::string> label(std::size_t index, std::string_view field) const {
    auto normalized = normalize_label(segments_[index]);
    if (!normalized) {
      respond_(error_response(400, "must be a DNS label: 1 to 63 letters, digits or '-'", field));
    }
    return normalized;
  }
  bool may_read() const {
    if (!access_) return true;
    const auto decision = access_->authorize_read(request_.authorization);
    if (decision.granted()) return true;
    // The path only: a client might have put a secret in the query string.
    const std::string path = request_.target.substr(0, request_.target.find('?'));
    respond_(access_denied(decision, request_, "read", "path=" + path.substr(0, 128)));
    return false;
  }
  // The service of a write route, normalised, if the token may change it.
  std::optional<std::string> writable_service(std::string_view action) const {
    if (access_) {
      const auto decision = access_->authenticate(request_.authorization);
      if (!decision.granted()) {
        respond_(access_denied(decision, request_, action,
                               "service=" + std::string(segments_[2].substr(0, 64))));
        return std::nullopt;
      }
    }
    auto service = label(2, "service");
    if (!service || !access_) return service;
    const auto decision = access_->authorize_write(request_.authorization, *service);
    if (decision.granted()) return service;
    respond_(access_denied(decision, request_, action, "service=" + *service, *service));
    return std::nullopt;
  }

 private:
  const HttpRequest& request_;
  const std::shared_ptr<const AccessControl> access_;
  Api::Respond& respond_;
  const std::vector<std::string_view> segments_;
};

void Api::handle(const HttpRequest& request, Respond respond) {
  const Route route(request, access_control_, respond);
  if (route_read(request, route, respond) || route_write(request, route, respond)) return;
  respond(error_response(404, "no such route: " + request.target));
}

bool Api::route_read(const HttpRequest& request, const Route& route, Respond& respond) {
  if (route.is({"v1", "status"})) {
    if (route.allows({"GET"}, "GET") && route.may_read()) status(std::move(respond));
  } else if (route.is({"v1", "events"})) {
    if (route.allows({"GET"}, "GET") && route.may_read()) {
      json events = events_provider_ ? events_provider_() : json::array();
      respond(json_response(200, {{"events", std::move(events)}}));
    }
  } else if (route.is({"v1", "services"})) {
    if (route.allows({"GET"}, "GET") && route.may_read()) list_services(std::move(respond));
  } else if (route.is({"v1", "services", "*"})) {
    if (!route.allows({"GET"}, "GET") || !route.may_read()) return true;
    if (auto service = route.label(2, "service")) get_service(*service, std::move(respond));
  } else if (route.is({"v1", "resolve", "*"})) {
    if (!route.allows({"GET"}, "GET") || !route.may_read()) return true;
    if (auto service = route.label(2, "service")) resolve(request, *service, std::move(respond));
  } else {
    return false;
  }
  return true;
}

bool Api::route_write(const HttpRequest& request, const Route& route, Respond& respond) {
  if (route.is({"v1", "services", "*", "instances"})) {
    if (!route.allows({"POST"}, "POST")) return true;
    if (auto service = route.writable_service("register")) {
      register_instance(request, std::move(*service), random_instance_id(), true,
                        std::move(respond));
    }
  } else if (route.is({"v1", "services", "*", "instances", "*"})) {
    if (!route.allows({"PUT", "DELETE"}, "PUT, DELETE")) return true;
    const bool put = route.method() == "PUT";
    auto service = route.writable_service(put ? "register" : "deregister");
    if (!service) return true;
    auto id = route.label(4, "id");
    if (!id) return true;
    if (put) {
      register_instance(request, std::move(*service), std::move(*id), false, std::move(respond));
    } else {
      deregister_instance(std::move(*service), std::move(*id), std::move(respond));
    }
  } else if (route.is({"v1", "services", "*", "instances", "*", "heartbeat"})) {
    if (!route.allows({"PUT"}, "PUT")) return true;
    auto service = route.writable_service("heartbeat");
    if (!service) return true;
    if (auto id = route.label(4, "id")) {
      heartbeat(request, std::move(*service), std::move(*id), std::move(respond));
    }
  } else {
    return false;
  }
  return true;
}

void Api::list_services(Respond respond) {
  reads_->post([this, respond = std::move(respond)] {
    try {
      json services = json::array();
      for (const auto& summary : store_.list_services()) {
        services.push_back({{"name", summary.service},
                            {"instances", summary.instance_count},
                            {"version", summary.version}});
      }
      respond(json_response(200, {{"services", std::move(services)}}));
    } catch (const std::exception& error) {
      respond(error_response(503, std::string("database unavailable: ") + error.what()));
    }
  });
}

void Api::get_service(const std::string& service, Respond respond) {
  const auto render = [service](const store::LookupResult& result) {
    if (!result.ok) return error_response(503, "database unavailable: " + result.error);
    const auto& snapshot = *result.snapshot;
    if (snapshot.instances.empty()) {
      return error_response(404, "no instances registered for " + service, "service");
    }
    json instances = json::array();
    for (const auto& instance : snapshot.instances) instances.push_back(instance_to_json(instance));
    return json_response(
        200, {{"service", snapshot.service},
              {"version", snapshot.version},
              {"lb", snapshot.lb ? json(store::to_string(*snapshot.lb)) : json(nullptr)},
              {"instances", std::move(instances)}});
  };
  if (auto cached = lookup_.find_cached(service)) return respond(render({true, cached, {}}));
  lookup_.fetch(service, [respond = std::move(respond), render](store::LookupResult result) {
    respond(render(result));
  });
}

// GET /v1/resolve/{service}[?tag=..][&strategy=..]: one instance picked by the
// service's strategy (or the one asked for), through the cache like DNS.
void Api::resolve(const HttpRequest& request, const std::string& service, Respond respond) {
  std::optional<std::string> tag;
  std::optional<store::LbStrategy> strategy;
  const auto query = request.target.find('?');
  if (query != std::string::npos) {
    std::string_view rest = std::string_view(request.target).substr(query + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      const std::string_view key = pair.substr(0, eq);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      if (key == "tag") {
        tag = normalize_label(value);
        if (!tag) {
          return respond(
              error_response(400, "must be a DNS label: 1 to 63 letters, digits or '-'", "tag"));
        }
      } else if (key == "strategy") {
        strategy = store::parse_lb_strategy(value);
        if (!strategy) {
          return respond(error_response(
              400, "must be \"round_robin\", \"weighted\", \"least_loaded\" or \"random\"",
              "strategy"));
        }
      } else {
        return respond(error_response(400, "unknown query parameter", std::string(key)));
      }
    }
  }
  const auto render = [service, tag, strategy, default_lb = default_lb_,
                       balancer = balancer_](const store::LookupResult& result) {
    if (!result.ok) return error_response(503, "database unavailable: " + result.error);
    const auto& snapshot = *result.snapshot;
    std::vector<const store::Instance*> storage;
    store::lb::InstanceSelection selection(snapshot, tag.value_or(""), {}, storage);
    if (selection.empty()) {
      return error_response(404, "no healthy instance of " + service, "service");
    }
    selection.balance(*balancer, strategy.value_or(snapshot.lb.value_or(default_lb)));
    const store::Registration& picked = selection.front().registration;
    return json_response(
        200, {{"address", picked.address.to_string()}, {"port", picked.port}, {"id", picked.id}});
  };
  if (auto cached = lookup_.find_cached(service)) return respond(render({true, cached, {}}));
  lookup_.fetch(service, [respond = std::move(respond), render](store::LookupResult result) {
    respond(render(result));
  });
}

void Api::status(Respond respond) {
  // The in-memory parts here, on the caller's thread (the providers read other
  // components' counters, some of which belong to this thread); the database
  // probe on a read thread.
  json status = {{"status", "serving"}};
  const auto writes = writer_.stats();
  status["database"] = {{"commits", writes.commits},
                        {"mutations", writes.mutations},
                        {"largest_batch", writes.largest_batch},
                        {"failed_commits", writes.failed_commits}};
  if (status_provider_) status_provider_(status);
  reads_->post([this, status = std::move(status), respond = std::move(respond)]() mutable {
    json& database = status["database"];
    try {
      const auto store_status = store_.status();
      database["status"] = "ok";
      database["backend"] = store_status.backend;
      database["location"] = store_status.location;
      database["schema_version"] = store_status.schema_version;
    } catch (const std::exception& error) {
      status["status"] = "degraded";
      database["status"] = "error";
      database["error"] = error.what();
    }
    respond(json_response(200, status));
  });
}

void Api::register_instance(const HttpRequest& request, std::string service, std::string id,
                            bool server_chose_id, Respond respond) {
  if (!is_json_content_type(request.content_type)) {
    return respond(error_response(415, "Content-Type must be application/json", "Content-Type"));
  }
  auto parsed = parse_registration(request.body, service, id, defaults_);
  if (auto* error = std::get_if<ValidationError>(&parsed)) {
    return respond(error_response(400, error->message, error->field));
  }
  auto registration = std::get<store::Registration>(std::move(parsed));
  if (registration_filter_) {
    if (auto refused = registration_filter_(registration)) {
      return respond(error_response(400, refused->message, refused->field));
    }
  }
  const std::string address = registration.address.to_string();
  const auto port = registration.port;
  const std::string lb = registration.lb ? std::string(store::to_string(*registration.lb)) : "";
  writer_.submit(
      store::Upsert{std::move(registration)},
      [respond = std::move(respond), service = std::move(service), id = std::move(id), address,
       port, lb, server_chose_id](const store::MutationResult& result) {
        if (result.outcome == store::Outcome::failed) {
          logger()->error("register failed service={} id={} error=\"{}\"", service, id,
                          result.error);
          return respond(write_failed(result));
        }
        const bool created = result.outcome == store::Outcome::created;
        if (result.previous_lb && !result.previous_lb->empty()) {
          // Replicas are meant to agree; the last registration wins.
          logger()->warn(
              "load-balancing strategy changed service={} from={} to={} by id={} (last writer "
              "wins; replicas of one service should register the same \"lb\")",
              service, *result.previous_lb, lb, id);
        }
        if (result.changed()) {
          logger()->info("{} service={} id={} address={} port={} version={}",
                         created ? "registered" : "updated", service, id, address, port,
                         result.service_version);
        }
        json body = {{"service", service}, {"id", id}, {"version", result.service_version}};
        respond(json_response(created || server_chose_id ? 201 : 200, body));
      });
}

void Api::deregister_instance(std::string service, std::string id, Respond respond) {
  writer_.submit(store::Deregister{service, id}, [respond = std::move(respond), service,
                                                  id](const store::MutationResult& result) {
    if (result.outcome == store::Outcome::failed) return respond(write_failed(result));
    if (result.outcome == store::Outcome::not_found) {
      return respond(error_response(404, "no instance " + id + " in service " + service, "id"));
    }
    logger()->info("deregistered service={} id={} version={}", service, id, result.service_version);
    respond(json_response(200, {{"service", service},
                                {"id", id},
                                {"removed", true},
                                {"version", result.service_version}}));
  });
}

void Api::heartbeat(const HttpRequest& request, std::string service, std::string id,
                    Respond respond) {
  const bool has_body = request.body.find_first_not_of(" \t\r\n") != std::string::npos;
  if (has_body && !is_json_content_type(request.content_type)) {
    return respond(error_response(415, "Content-Type must be application/json", "Content-Type"));
  }
  auto parsed = parse_heartbeat(request.body);
  if (auto* error = std::get_if<ValidationError>(&parsed)) {
    return respond(error_response(400, error->message, error->field));
  }
  const auto load = std::get<std::optional<double>>(parsed);
  writer_.submit(store::Heartbeat{service, id, load}, [respond = std::move(respond), service, id,
                                                       load](const store::MutationResult& result) {
    if (result.outcome == store::Outcome::failed) return respond(write_failed(result));
    if (result.outcome == store::Outcome::not_found) {
      return respond(error_response(404, "no instance " + id + " in service " + service, "id"));
    }
    json body = {{"service", service}, {"id", id}};
    if (load) body["load"] = *load;
    respond(json_response(200, body));
  });
}

}  // namespace registry
