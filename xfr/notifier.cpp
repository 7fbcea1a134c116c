// NOTIFY (RFC 1996) from the primary to its secondaries. All state lives on one
// strand: serial_changed() may come from any thread and only posts there, so no
// handler needs a lock. Handlers hold a weak_ptr, so that destroying the Notifier
// frees everything at once even when the io_context never runs again; whatever a
// pending operation still writes into (buffers) is owned by the handler itself.
#include "xfr/notifier.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <ctime>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "dns/wire.h"
#include "store/logging.h"

namespace xfr {

namespace asio = boost::asio;
using asio::ip::udp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint8_t kOpcodeNotify = 4;
constexpr std::chrono::milliseconds kMaxRetryWait{60'000};  // RFC 1996 leaves it open
// Unanswered NOTIFYs in a row (across rounds: frequent changes restart the
// backoff but must not hide an outage) before a target counts as down and is
// logged, once.
constexpr int kUnansweredBeforeWarning = 3;
// NOTIFY responses are a header and a question; anything longer is cut, which
// does not matter since only the header is read.
constexpr std::size_t kReceiveBufferSize = 1024;

// Question only (RFC 1996 3.7 makes the SOA in the answer section optional): the
// secondary asks us for the SOA anyway, and the hint would need the full RDATA.
std::vector<std::uint8_t> encode_notify(const dns::Name& zone, std::uint16_t id) {
  const auto name = zone.wire();
  std::vector<std::uint8_t> message(dns::kHeaderSize + name.size() + 4, 0);
  std::uint8_t* p = message.data();
  dns::store_u16(p, id);
  dns::store_u16(p + 2, static_cast<std::uint16_t>((kOpcodeNotify << 11) | dns::flag::aa));
  dns::store_u16(p + 4, 1);  // QDCOUNT; AN/NS/AR stay 0
  p = std::copy(name.begin(), name.end(), p + dns::kHeaderSize);
  dns::store_u16(p, dns::rrtype::soa);
  dns::store_u16(p + 2, dns::rrclass::in);
  return message;
}

dns::Name parse_zone(const std::string& zone) {
  auto name = dns::Name::from_text(zone);
  if (!name) throw std::invalid_argument("notify: invalid zone name '" + zone + "'");
  return *name;
}

std::string to_text(const udp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace

struct Notifier::Impl : std::enable_shared_from_this<Impl> {
  // One secondary and its outstanding NOTIFY, if any.
  struct Target {
    Target(const asio::any_io_executor& executor, udp::endpoint where)
        : endpoint(std::move(where)), retry_timer(executor) {}
    udp::endpoint endpoint;
    asio::steady_timer retry_timer;
    std::uint16_t id = 0;
    bool outstanding = false;
    // Bumped per send: a retry timer whose wait completed just before it was
    // re-armed or cancelled must not act (cancel() cannot recall it).
    std::uint64_t generation = 0;
    std::chrono::milliseconds next_wait{0};
    int unanswered = 0;             // sends since its last answer
    bool down = false;              // warned that it does not answer; reset by an answer
    std::uint8_t warned_rcode = 0;  // last non-NOERROR rcode warned about
  };

  // The sockets are opened by start() on the caller's thread and handed over
  // to the strand together.
  struct Sockets {
    std::optional<udp::socket> v4;
    std::optional<udp::socket> v6;
  };

  Impl(asio::io_context& io, NotifyOptions opts)
      : options(std::move(opts)),
        zone(parse_zone(options.zone)),
        strand(asio::make_strand(io)),
        round_timer(strand),
        log(store::component_logger("xfr")),
        random(std::random_device{}()) {
    for (const auto& endpoint : options.targets) targets.emplace_back(strand, endpoint);
  }

  Sockets open_sockets() const;
  void install(Sockets opened);
  void close_all();
  void on_serial(std::uint32_t serial);
  void start_round();
  void send(Target& target);
  void arm_retry(Target& target);
  void on_retry(Target& target, std::uint64_t generation);
  void receive(udp::socket& socket);
  void on_response(std::span<const std::uint8_t> message, const udp::endpoint& from);
  void on_answered(Target& target, std::uint8_t rcode);
  std::uint16_t fresh_id(std::uint16_t previous);
  std::weak_ptr<Impl> weak() { return weak_from_this(); }

  const NotifyOptions options;
  const dns::Name zone;
  asio::strand<asio::io_context::executor_type> strand;

  // Everything below is touched on the strand only (install/close included).
  std::optional<udp::socket> socket_v4;
  std::optional<udp::socket> socket_v6;
  std::vector<Target> targets;  // never resized after construction: handlers keep references
  asio::steady_timer round_timer;
  bool started = false;
  bool round_pending = false;   // round_timer is armed for the end of the interval
  bool serial_pending = false;  // a change arrived before start()
  std::optional<Clock::time_point> last_round;
  std::uint32_t serial = 0;
  std::shared_ptr<spdlog::logger> log;
  std::mt19937 random;

  // Set from the caller's thread: no handler starts anything once it is set.
  std::atomic<bool> stopped{false};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint32_t> last_serial{0};
};

Notifier::Impl::Sockets Notifier::Impl::open_sockets() const {
  Sockets opened;
  for (const auto& endpoint : options.targets) {
    const bool v4 = endpoint.address().is_v4();
    auto& slot = v4 ? opened.v4 : opened.v6;
    if (slot) continue;
    const udp protocol = v4 ? udp::v4() : udp::v6();
    slot.emplace(strand);
    error_code error;
    slot->open(protocol, error);
    // The unspecified address and port 0: the kernel picks the source per route.
    if (!error) slot->bind(udp::endpoint(protocol, 0), error);
    if (error) {
      throw std::runtime_error("notify: cannot open a UDP socket (" +
                               std::string(v4 ? "IPv4" : "IPv6") + "): " + error.message());
    }
  }
  return opened;
}

void Notifier::Impl::install(Sockets opened) {
  // A second start() (or one after stop()) keeps what runs; the new sockets
  // close as `opened` goes out of scope.
  if (stopped || started) return;
  socket_v4 = std::move(opened.v4);
  socket_v6 = std::move(opened.v6);
  started = true;
  if (socket_v4) receive(*socket_v4);
  if (socket_v6) receive(*socket_v6);
  if (serial_pending) {
    serial_pending = false;
    start_round();
  }
}

void Notifier::Impl::close_all() {
  error_code ignored;
  round_timer.cancel();
  for (auto& target : targets) {
    target.outstanding = false;
    target.retry_timer.cancel();
  }
  if (socket_v4) socket_v4->close(ignored);
  if (socket_v6) socket_v6->close(ignored);
  started = false;
}

// At most one round per interval: the first change after a quiet interval goes
// out at once, later ones wait for the interval's end and go out as one round
// (with whatever serial is newest by then).
void Notifier::Impl::on_serial(std::uint32_t new_serial) {
  if (stopped) return;
  serial = new_serial;
  if (!started) {
    serial_pending = true;
    return;
  }
  if (round_pending) return;
  const auto now = Clock::now();
  if (!last_round || now - *last_round >= options.interval) {
    start_round();
    return;
  }
  round_pending = true;
  round_timer.expires_at(*last_round + options.interval);
  round_timer.async_wait([self = weak()](const error_code& error) {
    auto impl = self.lock();
    if (!impl || error || impl->stopped) return;
    impl->round_pending = false;
    impl->start_round();
  });
}

void Notifier::Impl::start_round() {
  last_round = Clock::now();
  log->debug("notify: serial {} for {} to {} secondaries", serial, options.zone, targets.size());
  for (auto& target : targets) {
    // A new ID per round, so that a late answer to the previous round's NOTIFY
    // (which carried an older serial) does not count for this one.
    target.id = fresh_id(target.id);
    target.outstanding = true;
    // A zero first_retry would never back off (0 doubled is 0).
    target.next_wait = std::max(options.first_retry, std::chrono::milliseconds{1});
    send(target);
  }
}

// Retries reuse the round's ID: an answer to any of its copies means the
// secondary heard about this serial.
void Notifier::Impl::send(Target& target) {
  auto& socket = target.endpoint.address().is_v4() ? socket_v4 : socket_v6;
  if (!socket || !socket->is_open()) return;
  auto message = std::make_shared<std::vector<std::uint8_t>>(encode_notify(zone, target.id));
  if (options.key) {
    // A request: signed with no prior MAC (RFC 8945 section 4.3.1).
    const std::size_t size = message->size();
    message->resize(size + kTsigReserve);
    const std::size_t signed_size =
        TsigSigner(*options.key, {}).sign(*message, size, std::time(nullptr));
    message->resize(signed_size != 0 ? signed_size : size);
  }
  ++sent;
  ++target.unanswered;
  socket->async_send_to(asio::buffer(*message), target.endpoint,
                        [self = weak(), message, &target](const error_code& error, std::size_t) {
                          auto impl = self.lock();
                          // Not fatal: the retry timer sends again.
                          if (impl && error && error != asio::error::operation_aborted) {
                            impl->log->debug("notify: send to {} failed: {}",
                                             to_text(target.endpoint), error.message());
                          }
                        });
  arm_retry(target);
}

void Notifier::Impl::arm_retry(Target& target) {
  const std::uint64_t generation = ++target.generation;
  target.retry_timer.expires_after(target.next_wait);
  target.retry_timer.async_wait([self = weak(), &target, generation](const error_code& error) {
    auto impl = self.lock();
    if (!impl || error || impl->stopped) return;
    impl->on_retry(target, generation);
  });
}

void Notifier::Impl::on_retry(Target& target, std::uint64_t generation) {
  if (!target.outstanding || generation != target.generation) return;
  ++retries;
  target.next_wait = std::min(target.next_wait * 2, kMaxRetryWait);
  if (target.unanswered >= kUnansweredBeforeWarning && !target.down) {
    target.down = true;  // once per outage: reset only when it answers
    log->warn("notify: secondary {} has not answered {} NOTIFYs for {} (serial {}); retrying",
              to_text(target.endpoint), target.unanswered, options.zone, serial);
  }
  send(target);
}

void Notifier::Impl::receive(udp::socket& socket) {
  auto buffer = std::make_shared<std::array<std::uint8_t, kReceiveBufferSize>>();
  auto from = std::make_shared<udp::endpoint>();
  socket.async_receive_from(
      asio::buffer(*buffer), *from,
      [self = weak(), buffer, from, &socket](const error_code& error, std::size_t size) {
        auto impl = self.lock();
        if (!impl || impl->stopped || !socket.is_open()) return;
        if (error == asio::error::operation_aborted) return;
        if (!error) {
          impl->on_response({buffer->data(), size}, *from);
        } else {
          // An ICMP error reported on the socket, say; keep reading.
          impl->log->debug("notify: receive failed: {}", error.message());
        }
        impl->receive(socket);
      });
}

// A response counts when it comes from the target's address and port, is a
// NOTIFY response and carries the outstanding ID; anything else is ignored,
// which keeps a spoofed or stray datagram from stopping the retries.
void Notifier::Impl::on_response(std::span<const std::uint8_t> message, const udp::endpoint& from) {
  const auto header = dns::read_header(message);
  if (!header || !header->qr() || header->opcode() != kOpcodeNotify) return;
  for (auto& target : targets) {
    if (target.outstanding && target.id == header->id && target.endpoint == from) {
      on_answered(target, header->rcode());
      return;
    }
  }
}

void Notifier::Impl::on_answered(Target& target, std::uint8_t rcode) {
  target.outstanding = false;
  target.unanswered = 0;
  ++target.generation;  // a retry wait that already completed does nothing
  target.retry_timer.cancel();
  ++answered;
  if (target.down) {
    target.down = false;
    log->info("notify: secondary {} answers again", to_text(target.endpoint));
  }
  // Any RCODE ends the retries (the secondary heard us; NOTAUTH or REFUSED will
  // not change by repeating), but one that is not NOERROR is worth a warning,
  // once until it changes.
  if (rcode == dns::rcode::noerror) {
    target.warned_rcode = 0;
  } else if (rcode != target.warned_rcode) {
    target.warned_rcode = rcode;
    log->warn("notify: secondary {} answered the NOTIFY for {} with rcode {}",
              to_text(target.endpoint), options.zone, rcode);
  }
}

std::uint16_t Notifier::Impl::fresh_id(std::uint16_t previous) {
  std::uniform_int_distribution<unsigned> distribution(0, 0xFFFF);
  std::uint16_t id = previous;
  while (id == previous) id = static_cast<std::uint16_t>(distribution(random));
  return id;
}

Notifier::Notifier(asio::io_context& io, NotifyOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Notifier::~Notifier() {
  stop();
}

void Notifier::start() {
  if (impl_->stopped) return;
  // Opened here so that failure reaches the caller as an exception; used only
  // on the strand from then on.
  auto opened = std::make_shared<Impl::Sockets>(impl_->open_sockets());
  asio::dispatch(impl_->strand, [self = impl_->weak(), opened] {
    if (auto impl = self.lock()) impl->install(std::move(*opened));
  });
}

void Notifier::stop() {
  if (impl_->stopped.exchange(true)) return;
  // Sockets and timers belong to the strand; when the io_context no longer
  // runs, they close when the Impl is destroyed instead.
  asio::dispatch(impl_->strand, [self = impl_->weak()] {
    if (auto impl = self.lock()) impl->close_all();
  });
}

void Notifier::serial_changed(std::uint32_t serial) {
  impl_->last_serial = serial;
  asio::post(impl_->strand, [self = impl_->weak(), serial] {
    if (auto impl = self.lock()) impl->on_serial(serial);
  });
}

NotifyStats Notifier::stats() const {
  NotifyStats stats;
  stats.sent = impl_->sent;
  stats.retries = impl_->retries;
  stats.answered = impl_->answered;
  stats.last_serial = impl_->last_serial;
  return stats;
}

}  // namespace xfr
