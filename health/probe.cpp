#include "health/probe.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <unordered_set>
#include <utility>

#include "health/http_response.h"

namespace health {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

tcp::endpoint to_endpoint(const store::IpAddress& address, std::uint16_t port) {
  if (address.is_v4()) {
    asio::ip::address_v4::bytes_type bytes;
    std::copy_n(address.bytes.begin(), bytes.size(), bytes.begin());
    return {asio::ip::address_v4(bytes), port};
  }
  asio::ip::address_v6::bytes_type bytes;
  std::copy_n(address.bytes.begin(), bytes.size(), bytes.begin());
  return {asio::ip::address_v6(bytes), port};
}

std::string host_of(const store::IpAddress& address) {
  return address.is_v4() ? address.to_string() : "[" + address.to_string() + "]";
}

ProbeResult failure(std::string reason) {
  ProbeResult result;
  result.reason = std::move(reason);
  return result;
}

std::string status_reason(int status) {
  std::string reason = "http " + std::to_string(status);
  if (status >= 300 && status <= 399) reason += " (redirects are not followed)";
  return reason;
}

}  // namespace

class ProbeOp;

struct Prober::Impl {
  Impl(asio::io_context& context, std::size_t bytes, std::string agent)
      : io(context),
        max_response_bytes(std::max<std::size_t>(bytes, 64)),
        user_agent(std::move(agent)) {}
  asio::io_context& io;
  std::size_t max_response_bytes;
  std::string user_agent;
  std::unordered_set<ProbeOp*> active;
};

// One probe: connect, then (http) send the request and read up to the end of the
// response head. The deadline timer ends it early; so does abort().
class ProbeOp : public std::enable_shared_from_this<ProbeOp> {
 public:
  ProbeOp(std::shared_ptr<Prober::Impl> owner, const ProbeTarget& target,
          std::chrono::milliseconds timeout, Prober::Callback done)
      : owner_(std::move(owner)),
        target_(target),
        timeout_(timeout),
        done_(std::move(done)),
        socket_(owner_->io),
        timer_(owner_->io) {}
  // Also when the io_context is destroyed with the probe's handlers still queued.
  ~ProbeOp() { owner_->active.erase(this); }
  ProbeOp(const ProbeOp&) = delete;
  ProbeOp& operator=(const ProbeOp&) = delete;

  void start() {
    owner_->active.insert(this);
    const tcp::endpoint endpoint = to_endpoint(target_.address, target_.port);
    if (target_.type == store::CheckType::http && !safe_request_path(target_.path)) {
      return finish_later(failure("invalid http check path"));
    }
    error_code ec;
    socket_.open(endpoint.protocol(), ec);
    if (ec) return finish_later(failure("socket: " + ec.message()));
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](const error_code& error) {
      if (!error && !self->finished_) {
        self->finish(failure("timeout after " + std::to_string(self->timeout_.count()) + "ms"));
      }
    });
    socket_.async_connect(endpoint, [self = shared_from_this()](const error_code& error) {
      self->on_connect(error);
    });
  }

  // Ends the probe: the pending operation completes with operation_aborted and
  // reports `aborted`.
  void abort() {
    if (finished_) return;
    aborting_ = true;
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

 private:
  bool stopped() {
    if (finished_) return true;
    if (aborting_) {
      ProbeResult result;
      result.aborted = true;
      result.reason = "aborted";
      finish(std::move(result));
      return true;
    }
    return false;
  }

  void on_connect(const error_code& error) {
    if (stopped()) return;
    if (error) return finish(failure("connect: " + error.message()));
    if (target_.type != store::CheckType::http) return finish(ProbeResult{true, false, {}, {}});
    request_ =
        build_request(host_of(target_.address), target_.port, target_.path, owner_->user_agent);
    asio::async_write(socket_, asio::buffer(request_),
                      [self = shared_from_this()](const error_code& error, std::size_t) {
                        self->on_write(error);
                      });
  }

  void on_write(const error_code& error) {
    if (stopped()) return;
    if (error) return finish(failure("send: " + error.message()));
    buffer_.resize(owner_->max_response_bytes);
    read_more();
  }

  void read_more() {
    socket_.async_read_some(
        asio::buffer(buffer_.data() + filled_, buffer_.size() - filled_),
        [self = shared_from_this()](const error_code& error, std::size_t bytes) {
          self->on_read(error, bytes);
        });
  }

  void on_read(const error_code& error, std::size_t bytes) {
    if (stopped()) return;
    filled_ += bytes;
    const HeadParse parsed = parse_response_head(std::string_view(buffer_.data(), filled_));
    switch (parsed.state) {
      case HeadParse::State::complete:
        if (status_passes(parsed.head.status)) {
          return finish(ProbeResult{true, false, {}, parsed.head.load});
        }
        return finish(failure(status_reason(parsed.head.status)));
      case HeadParse::State::malformed:
        return finish(failure("malformed response: " + parsed.error));
      case HeadParse::State::incomplete:
        break;
    }
    if (error == asio::error::eof) {
      return finish(failure("connection closed before the end of the response headers"));
    }
    if (error) return finish(failure("receive: " + error.message()));
    if (filled_ == buffer_.size()) {
      return finish(
          failure("response headers exceed " + std::to_string(buffer_.size()) + " bytes"));
    }
    read_more();
  }

  void finish(ProbeResult result) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    error_code ignored;
    if (socket_.is_open()) {
      // A reset instead of a FIN: the checker keeps no TIME_WAIT per probe (at
      // thousands of probes a second they would exhaust the ephemeral ports).
      socket_.set_option(tcp::socket::linger(true, 0), ignored);
      socket_.close(ignored);
    }
    owner_->active.erase(this);
    std::vector<char>().swap(buffer_);
    auto done = std::move(done_);
    done(std::move(result));
  }

  void finish_later(ProbeResult result) {
    asio::post(owner_->io, [self = shared_from_this(), result = std::move(result)]() mutable {
      self->finish(std::move(result));
    });
  }

  std::shared_ptr<Prober::Impl> owner_;
  ProbeTarget target_;
  std::chrono::milliseconds timeout_;
  Prober::Callback done_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string request_;
  std::vector<char> buffer_;
  std::size_t filled_ = 0;
  bool finished_ = false;
  bool aborting_ = false;
};

Prober::Prober(asio::io_context& io, std::size_t max_response_bytes, std::string user_agent)
    : impl_(std::make_shared<Impl>(io, max_response_bytes, std::move(user_agent))) {}

Prober::~Prober() {
  cancel_all();
}

void Prober::probe(const ProbeTarget& target, std::chrono::milliseconds timeout, Callback done) {
  std::make_shared<ProbeOp>(impl_, target, timeout, std::move(done))->start();
}

void Prober::cancel_all() {
  const std::vector<ProbeOp*> active(impl_->active.begin(), impl_->active.end());
  for (ProbeOp* op : active) op->abort();
}

std::size_t Prober::in_flight() const {
  return impl_->active.size();
}

}  // namespace health
