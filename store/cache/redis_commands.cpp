// Commands: sending argv through hiredis with a deadline each, turning replies
// into plain Reply values, timeouts (and dropping a connection that only times
// out), and failing commands through the deferred reactions.
#include <algorithm>

#include "store/cache/redis_client_impl.h"

namespace store::redis {

namespace asio = boost::asio;

namespace {

Reply convert(const redisReply* reply) {
  Reply out;
  switch (reply->type) {
    case REDIS_REPLY_STATUS:
      out.kind = Reply::Kind::status;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = Reply::Kind::error;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STRING:
      out.kind = Reply::Kind::string;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = Reply::Kind::integer;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = Reply::Kind::array;
      out.elements.reserve(reply->elements);
      for (std::size_t i = 0; i < reply->elements; ++i) {
        out.elements.push_back(convert(reply->element[i]));
      }
      break;
    default:
      out.kind = Reply::Kind::nil;
      break;
  }
  return out;
}

}  // namespace

bool Client::Impl::issue(Connection& c, const std::vector<std::string>& argv, Callback& done,
                         bool user, std::chrono::milliseconds timeout) {
  if (!c.context) return false;
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
  pointers.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& arg : argv) {
    pointers.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  const std::uint64_t id = c.next_id++;
  if (redisAsyncCommandArgv(
          c.context, &Impl::on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)),
          static_cast<int>(argv.size()), pointers.data(), lengths.data()) != REDIS_OK) {
    return false;
  }
  const auto deadline = Clock::now() + timeout;
  if (user) ++in_flight;
  c.pending.push_back({id, deadline, std::move(done), user});
  arm_deadline(c, deadline);
  return true;
}

void Client::Impl::issue_internal(Connection& c, const std::vector<std::string>& argv,
                                  std::function<void(const Result&)> on_result) {
  Callback done = [this, on_result = std::move(on_result)](Result result) {
    if (!stopping) on_result(result);
  };
  if (!issue(c, argv, done, false, options.connect_timeout)) {
    fail(std::move(done), "not connected");
  }
}

void Client::Impl::on_reply(redisAsyncContext* context, void* reply, void* privdata) {
  auto* c = static_cast<Connection*>(context->data);
  if (!c) return;
  const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
  c->owner.handle_reply(*c, static_cast<const redisReply*>(reply), id);
}

void Client::Impl::handle_reply(Connection& c, const redisReply* reply, std::uint64_t id) {
  const auto it = std::find_if(c.pending.begin(), c.pending.end(),
                               [id](const Pending& p) { return p.id == id; });
  if (it == c.pending.end()) return;
  Pending pending = std::move(*it);
  c.pending.erase(it);
  if (reply) c.consecutive_timeouts = 0;
  if (!pending.done) return;  // timed out earlier
  if (pending.user) --in_flight;
  Result result;
  if (reply) {
    result.ok = true;
    result.reply = convert(reply);
    if (pending.user) {
      ++replies;
      if (result.reply.is_error()) ++error_replies;
    }
  } else {
    result.error = c.closing_reason.empty() ? "connection lost" : c.closing_reason;
    if (pending.user) ++errors;
  }
  deferred.push_back({std::move(pending.done), std::move(result), {}});
}

void Client::Impl::arm_deadline(Connection& c, Clock::time_point deadline) {
  if (c.deadline_armed && *c.deadline_armed <= deadline) return;
  c.deadline_armed = deadline;
  c.deadline_timer.expires_at(deadline);
  c.deadline_timer.async_wait(
      [weak = weak_from_this(), generation = c.generation](const boost::system::error_code& e) {
        if (e == asio::error::operation_aborted) return;
        enter(weak, [&](Impl& self) {
          Connection& c = self.main;
          if (self.stopping || c.generation != generation) return;
          c.deadline_armed.reset();
          self.expire(c);
        });
      });
}

void Client::Impl::expire(Connection& c) {
  const auto now = Clock::now();
  std::optional<Clock::time_point> next;
  for (auto& pending : c.pending) {
    if (!pending.done) continue;
    if (pending.deadline <= now) {
      if (pending.user) {
        ++timeouts;
        --in_flight;
      }
      ++c.consecutive_timeouts;
      fail(std::move(pending.done), "timeout", false);
      pending.done = nullptr;
    } else if (!next || pending.deadline < *next) {
      next = pending.deadline;
    }
  }
  if (c.state == State::up && c.consecutive_timeouts >= options.max_consecutive_timeouts) {
    const std::string reason =
        "no reply to " + std::to_string(c.consecutive_timeouts) + " consecutive commands";
    drop(c, reason);
    return;
  }
  if (next) arm_deadline(c, *next);
}

void Client::Impl::fail(Callback done, std::string error, bool count) {
  if (!done) return;
  if (count) ++errors;
  deferred.push_back({std::move(done), failure(std::move(error)), {}});
}

}  // namespace store::redis
