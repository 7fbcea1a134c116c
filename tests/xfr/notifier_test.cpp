// NOTIFY sender tests: fake secondaries on 127.0.0.1 (blocking sockets on their
// own threads, messages parsed with ldns, independent of the code under test)
// check the message, coalescing, retries and their ID matching; a real knotd
// configured as a secondary checks that a real implementation accepts it.
#include "xfr/notifier.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#if defined(SPDLOG_COMPILED_LIB)
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#endif

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "dns/ldns.h"

extern char** environ;

namespace xfr {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using boost::asio::ip::udp;

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// True when `condition` holds throughout `duration` (checking that nothing
// more happens: there is no event to wait for).
bool holds_for(const std::function<bool()>& condition, std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!condition()) return false;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

int bound_udp_socket(std::uint16_t port = 0) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error("cannot bind a UDP socket on 127.0.0.1");
  }
  timeval timeout{0, 20'000};  // lets the receiving thread notice it should stop
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// A NOTIFY as the fake secondary saw it, decoded by ldns.
struct Received {
  std::uint16_t id = 0;
  bool qr = false;
  bool aa = false;
  int opcode = -1;
  std::size_t qdcount = 0;
  std::size_t ancount = 0;
  std::string qname;
  int qtype = 0;
  int qclass = 0;
  Bytes raw;
  sockaddr_in from{};
  std::chrono::steady_clock::time_point at;
};

std::optional<Received> decode(const Bytes& raw) {
  ldns_pkt* packet = nullptr;
  if (ldns_wire2pkt(&packet, raw.data(), raw.size()) != LDNS_STATUS_OK) return std::nullopt;
  Received r;
  r.id = ldns_pkt_id(packet);
  r.qr = ldns_pkt_qr(packet);
  r.aa = ldns_pkt_aa(packet);
  r.opcode = ldns_pkt_get_opcode(packet);
  r.qdcount = ldns_pkt_qdcount(packet);
  r.ancount = ldns_pkt_ancount(packet);
  if (r.qdcount > 0) {
    const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(packet), 0);
    char* owner = ldns_rdf2str(ldns_rr_owner(question));
    r.qname = owner;
    free(owner);
    r.qtype = ldns_rr_get_type(question);
    r.qclass = ldns_rr_get_class(question);
  }
  ldns_pkt_free(packet);
  r.raw = raw;
  return r;
}

// How the fake secondary reacts to the n-th NOTIFY (0-based).
struct Reaction {
  bool answer = true;
  std::uint16_t id_xor = 0;      // non-zero: a wrong ID
  bool from_other_port = false;  // answer from a different source port
  std::uint8_t rcode = 0;
  int copies = 1;  // a duplicated answer must count once
};

class FakeSecondary {
 public:
  explicit FakeSecondary(std::function<Reaction(std::size_t)> react = {})
      : react_(std::move(react)), fd_(bound_udp_socket()), other_fd_(bound_udp_socket()) {
    thread_ = std::thread([this] { run(); });
  }
  ~FakeSecondary() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    ::close(other_fd_);
  }

  udp::endpoint endpoint() const {
    return {boost::asio::ip::make_address("127.0.0.1"), local_port(fd_)};
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return received_.size();
  }
  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void run() {
    while (!stop_) {
      Bytes buffer(4096);
      sockaddr_in from{};
      socklen_t length = sizeof from;
      const ssize_t size = ::recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                      reinterpret_cast<sockaddr*>(&from), &length);
      if (size <= 0) continue;
      buffer.resize(static_cast<std::size_t>(size));
      auto message = decode(buffer);
      if (!message) {
        ADD_FAILURE() << "the fake secondary got a message ldns cannot parse";
        continue;
      }
      message->from = from;
      message->at = std::chrono::steady_clock::now();
      std::size_t index = 0;
      {
        std::lock_guard lock(mutex_);
        index = received_.size();
        received_.push_back(*message);
      }
      const Reaction reaction = react_ ? react_(index) : Reaction{};
      if (reaction.answer) reply(*message, reaction);
    }
  }

  // The response echoes header and question, as secondaries do (RFC 1996 4.7).
  void reply(const Received& notify, const Reaction& reaction) {
    Bytes response = notify.raw;
    const std::uint16_t id = notify.id ^ reaction.id_xor;
    const std::uint16_t flags =
        static_cast<std::uint16_t>(0x8000 | (notify.opcode << 11) | 0x0400 | reaction.rcode);
    response[0] = static_cast<std::uint8_t>(id >> 8);
    response[1] = static_cast<std::uint8_t>(id);
    response[2] = static_cast<std::uint8_t>(flags >> 8);
    response[3] = static_cast<std::uint8_t>(flags);
    const int fd = reaction.from_other_port ? other_fd_ : fd_;
    for (int i = 0; i < reaction.copies; ++i) {
      ::sendto(fd, response.data(), response.size(), 0,
               reinterpret_cast<const sockaddr*>(&notify.from), sizeof notify.from);
    }
  }

  std::function<Reaction(std::size_t)> react_;
  int fd_;
  int other_fd_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  std::thread thread_;
};

#if defined(SPDLOG_COMPILED_LIB)
// Captures the "xfr" component's log (the Notifier looks it up when built).
// Needs the test to share spdlog's registry with the library, i.e. to link
// spdlog::spdlog (a header-only copy would have a registry of its own).
constexpr bool kLogsCaptured = true;
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)) {
    spdlog::drop("xfr");
    auto logger = std::make_shared<spdlog::logger>("xfr", sink_);
    logger->set_level(spdlog::level::debug);
    spdlog::register_logger(logger);
  }
  ~LogCapture() { spdlog::drop("xfr"); }
  std::size_t warnings_containing(const std::string& text) const {
    std::size_t count = 0;
    for (const auto& message : sink_->last_raw()) {
      const std::string payload(message.payload.data(), message.payload.size());
      if (message.level == spdlog::level::warn && payload.find(text) != std::string::npos) {
        ++count;
      }
    }
    return count;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};
#else
constexpr bool kLogsCaptured = false;
struct LogCapture {
  std::size_t warnings_containing(const std::string&) const { return 0; }
};
#endif
constexpr const char* kNoLogCapture = "log checks need spdlog::spdlog linked into xfr_tests";

class NotifierTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (notifier_) notifier_->stop();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    notifier_.reset();
  }

  Notifier& start(std::vector<udp::endpoint> targets, std::chrono::milliseconds interval,
                  std::chrono::milliseconds first_retry) {
    NotifyOptions options;
    options.targets = std::move(targets);
    options.zone = "discovery.";
    options.interval = interval;
    options.first_retry = first_retry;
    notifier_ = std::make_unique<Notifier>(io_, options);
    notifier_->start();
    thread_ = std::thread([this] { io_.run(); });
    return *notifier_;
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::unique_ptr<Notifier> notifier_;
  std::thread thread_;
};

TEST_F(NotifierTest, SendsNotifyForTheZoneAndStopsWhenAnswered) {
  FakeSecondary secondary([](std::size_t) { return Reaction{.copies = 2}; });
  Notifier& notifier = start({secondary.endpoint()}, 100ms, 200ms);
  notifier.serial_changed(2024010101);

  ASSERT_TRUE(wait_until([&] { return secondary.count() >= 1; })) << "no NOTIFY arrived";
  const Received notify = secondary.received()[0];
  EXPECT_EQ(notify.opcode, static_cast<int>(LDNS_PACKET_NOTIFY));
  EXPECT_TRUE(notify.aa);
  EXPECT_FALSE(notify.qr);
  ASSERT_EQ(notify.qdcount, 1u);
  EXPECT_EQ(notify.qname, "discovery.");
  EXPECT_EQ(notify.qtype, static_cast<int>(LDNS_RR_TYPE_SOA));
  EXPECT_EQ(notify.qclass, static_cast<int>(LDNS_RR_CLASS_IN));
  EXPECT_EQ(notify.ancount, 0u);

  ASSERT_TRUE(wait_until([&] { return notifier.stats().answered == 1; }));
  // Past first_retry twice over: an answered NOTIFY is not repeated.
  EXPECT_TRUE(holds_for([&] { return secondary.count() == 1; }, 500ms));
  const NotifyStats stats = notifier.stats();
  EXPECT_EQ(stats.sent, 1u);
  EXPECT_EQ(stats.retries, 0u);
  EXPECT_EQ(stats.answered, 1u) << "the duplicated answer counted twice";
  EXPECT_EQ(stats.last_serial, 2024010101u);
}

TEST_F(NotifierTest, ChangesWithinAnIntervalCoalesceIntoOneRound) {
  FakeSecondary secondary;
  constexpr auto kInterval = 300ms;
  Notifier& notifier = start({secondary.endpoint()}, kInterval, 1s);
  for (std::uint32_t serial = 1000; serial < 1050; ++serial) notifier.serial_changed(serial);

  ASSERT_TRUE(wait_until([&] { return secondary.count() >= 2; })) << "no second round";
  EXPECT_TRUE(holds_for([&] { return secondary.count() == 2; }, kInterval * 2))
      << "more than the immediate round and the one at the interval's end";
  const auto received = secondary.received();
  EXPECT_GE(received[1].at - received[0].at, kInterval - 30ms) << "the second round came early";
  EXPECT_NE(received[0].id, received[1].id) << "each round needs a fresh ID";
  const NotifyStats stats = notifier.stats();
  EXPECT_EQ(stats.last_serial, 1049u);
  EXPECT_EQ(stats.sent, 2u);
  EXPECT_EQ(stats.answered, 2u);
}

TEST_F(NotifierTest, RetriesUntilAMatchingAnswer) {
  // The first answer has a wrong ID, the second the right ID from the wrong
  // port; neither may stop the retries. The third NOTIFY is answered properly.
  FakeSecondary secondary([](std::size_t index) {
    Reaction reaction;
    if (index == 0) reaction.id_xor = 0x5a5a;
    if (index == 1) reaction.from_other_port = true;
    return reaction;
  });
  constexpr auto kFirstRetry = 100ms;
  Notifier& notifier = start({secondary.endpoint()}, 100ms, kFirstRetry);
  notifier.serial_changed(7);

  ASSERT_TRUE(wait_until([&] { return secondary.count() >= 3; })) << "the retries stopped";
  ASSERT_TRUE(wait_until([&] { return notifier.stats().answered == 1; }));
  // The next retry would come 4 * first_retry after the third NOTIFY.
  EXPECT_TRUE(holds_for([&] { return secondary.count() == 3; }, kFirstRetry * 6));
  const auto received = secondary.received();
  // Retries repeat the round's NOTIFY, ID included; the answer echoed it.
  EXPECT_EQ(received[1].id, received[0].id);
  EXPECT_EQ(received[2].id, received[0].id);
  // The gaps double: first_retry, then twice that.
  EXPECT_GE(received[1].at - received[0].at, kFirstRetry - 20ms);
  EXPECT_GE(received[2].at - received[1].at, 2 * kFirstRetry - 20ms);
  const NotifyStats stats = notifier.stats();
  EXPECT_EQ(stats.sent, 3u);
  EXPECT_EQ(stats.retries, 2u);
  EXPECT_EQ(stats.answered, 1u);
}

TEST_F(NotifierTest, KeepsRetryingASilentSecondaryAndWarnsOnce) {
  LogCapture log;
  FakeSecondary answering;
  FakeSecondary silent([](std::size_t) { return Reaction{.answer = false}; });
  const std::string silent_text = "127.0.0.1:" + std::to_string(silent.endpoint().port());
  Notifier& notifier = start({answering.endpoint(), silent.endpoint()}, 100ms, 50ms);
  notifier.serial_changed(42);

  // Retries at 50, 150, 350 and 750 ms: five NOTIFYs in under a second.
  ASSERT_TRUE(wait_until([&] { return silent.count() >= 5; })) << "the retries stopped";
  EXPECT_EQ(answering.count(), 1u);
  EXPECT_EQ(notifier.stats().answered, 1u);
  EXPECT_TRUE(wait_until([&] { return notifier.stats().sent == 1 + silent.count(); }));
  if (!kLogsCaptured) GTEST_SKIP() << kNoLogCapture;
  EXPECT_EQ(log.warnings_containing(silent_text), 1u) << "one warning per outage";
  EXPECT_EQ(log.warnings_containing("127.0.0.1:" + std::to_string(answering.endpoint().port())),
            0u);
}

TEST_F(NotifierTest, AnyRcodeEndsRetriesButIsWarnedAboutOnce) {
  LogCapture log;
  FakeSecondary refusing(
      [](std::size_t) { return Reaction{.rcode = static_cast<std::uint8_t>(LDNS_RCODE_REFUSED)}; });
  Notifier& notifier = start({refusing.endpoint()}, 50ms, 100ms);
  notifier.serial_changed(1);
  ASSERT_TRUE(wait_until([&] { return notifier.stats().answered == 1; }));
  // A second round after a quiet interval goes out at once, and is refused too.
  std::this_thread::sleep_for(60ms);  // ensures the quiet interval, not correctness
  notifier.serial_changed(2);
  ASSERT_TRUE(wait_until([&] { return notifier.stats().answered == 2; }));
  EXPECT_TRUE(holds_for([&] { return refusing.count() == 2; }, 300ms));
  EXPECT_EQ(notifier.stats().retries, 0u);
  if (!kLogsCaptured) GTEST_SKIP() << kNoLogCapture;
  EXPECT_EQ(log.warnings_containing("rcode"), 1u);
}

TEST_F(NotifierTest, StopEndsRetries) {
  FakeSecondary silent([](std::size_t) { return Reaction{.answer = false}; });
  Notifier& notifier = start({silent.endpoint()}, 50ms, 30ms);
  notifier.serial_changed(1);
  ASSERT_TRUE(wait_until([&] { return silent.count() >= 2; }));
  // Stopped from the io thread, so that no handler is half-way through a send
  // when the count is taken.
  std::promise<std::uint64_t> stopped;
  boost::asio::post(io_, [&] {
    notifier.stop();
    stopped.set_value(notifier.stats().sent);
  });
  const std::uint64_t sent = stopped.get_future().get();
  EXPECT_TRUE(holds_for([&] { return notifier.stats().sent == sent; }, 300ms));
  notifier.serial_changed(2);  // ignored once stopped
  EXPECT_TRUE(holds_for([&] { return notifier.stats().sent == sent; }, 100ms));
}

TEST(NotifierLifetime, DestroyWithoutStartOrRunningIo) {
  boost::asio::io_context io;
  { Notifier never_started(io, NotifyOptions{}); }
  {
    NotifyOptions options;
    options.targets = {{boost::asio::ip::make_address("127.0.0.1"), 9}};
    Notifier started(io, options);
    started.start();
    started.serial_changed(3);  // queued; the io_context never runs
  }
  io.run();  // the queued handlers find the Notifier gone
  NotifyOptions bad;
  bad.zone = "bad..name";
  EXPECT_THROW(Notifier(io, bad), std::invalid_argument);
}

// knotd as a secondary of discovery. with an ACL that allows our NOTIFY: it
// must answer NOERROR (a malformed NOTIFY gets FORMERR, a refused one NOTAUTH).
class KnotSecondary {
 public:
  explicit KnotSecondary(const std::filesystem::path& dir) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    port_ = free_port();
    const std::string d = dir_.string();
    std::ofstream(dir_ / "knot.conf")
        << "server:\n    listen: 127.0.0.1@" << port_ << "\n    rundir: " << d
        << "\ndatabase:\n    storage: " << d << "\nlog:\n  - target: stderr\n    any: info\n"
        << "remote:\n  - id: primary\n    address: 127.0.0.1@9\n"
        << "acl:\n  - id: from_primary\n    address: 127.0.0.1\n    action: notify\n"
        << "zone:\n  - domain: discovery.\n    storage: " << d
        << "\n    master: primary\n    acl: from_primary\n";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = (dir_ / "knot.log").string();
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 2, 1);
    std::string program = "knotd", flag = "-c", conf = (dir_ / "knot.conf").string();
    std::vector<char*> argv = {program.data(), flag.data(), conf.data(), nullptr};
    if (::posix_spawnp(&pid_, "knotd", &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~KnotSecondary() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  bool started() const { return pid_ > 0 && port_ != 0; }
  std::uint16_t port() const { return port_; }
  std::string log() const {
    std::stringstream text;
    text << std::ifstream(dir_ / "knot.log").rdbuf();
    return text.str();
  }

  // Any answer to an SOA query means it listens (it may still be SERVFAIL).
  bool answers() const {
    const int fd = bound_udp_socket();
    const Bytes query = {0x12, 0x34, 0,   0,   0,   1,   0,   0,   0, 0, 0, 0, 9, 'd',
                         'i',  's',  'c', 'o', 'v', 'e', 'r', 'y', 0, 0, 6, 0, 1};
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port_);
    ::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    std::uint8_t buffer[512];
    bool answered = false;
    for (int i = 0; i < 5 && !answered; ++i) answered = ::recv(fd, buffer, sizeof buffer, 0) > 0;
    ::close(fd);
    return answered;
  }

 private:
  // Knot listens on TCP as well, so the port must be free for both.
  static std::uint16_t free_port() {
    for (int attempt = 0; attempt < 20; ++attempt) {
      const int udp_fd = bound_udp_socket();
      const std::uint16_t port = local_port(udp_fd);
      const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(port);
      const bool free = ::bind(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
      ::close(tcp);
      ::close(udp_fd);
      if (free) return port;
    }
    return 0;
  }

  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(NotifierTest, KnotAcceptsTheNotify) {
  if (std::system("command -v knotd >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "knotd not installed";
  }
  LogCapture log;
  KnotSecondary knot(std::filesystem::temp_directory_path() /
                     ("notifier-knot-" + std::to_string(::getpid())));
  ASSERT_TRUE(knot.started());
  ASSERT_TRUE(wait_until([&] { return knot.answers(); }, 10s)) << "knotd did not start:\n"
                                                               << knot.log();
  Notifier& notifier =
      start({{boost::asio::ip::make_address("127.0.0.1"), knot.port()}}, 100ms, 500ms);
  notifier.serial_changed(2024010101);

  ASSERT_TRUE(wait_until([&] { return notifier.stats().answered == 1; })) << knot.log();
  if (kLogsCaptured) {
    EXPECT_EQ(log.warnings_containing("rcode"), 0u) << "knotd did not answer NOERROR:\n"
                                                    << knot.log();
  }
  EXPECT_EQ(notifier.stats().sent, 1u);
  // Knot logs an accepted NOTIFY (and starts a refresh from the primary).
  EXPECT_TRUE(
      wait_until([&] { return knot.log().find("notify, incoming") != std::string::npos; }, 2s))
      << knot.log();
  EXPECT_EQ(knot.log().find("denied"), std::string::npos) << knot.log();
}

}  // namespace
}  // namespace xfr
