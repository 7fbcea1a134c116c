// store::redis::Client against a real redis-server: round trips, pipelining,
// timeouts, reconnection, dead-peer detection, shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "store/cache/redis_client.h"
#include "tests/support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using store::redis::Client;
using store::redis::Options;
using store::redis::Reply;
using store::redis::Result;
using test_support::RedisServer;
using test_support::wait_until;

// An io_context run by one background thread until destruction.
class IoThread {
 public:
  IoThread() : guard_(boost::asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& context() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// Issues one command and waits for its callback.
Result call(Client& client, std::vector<std::string> argv, std::chrono::milliseconds wait = 5s) {
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  client.command(std::move(argv), [promise](Result result) { promise->set_value(result); });
  if (future.wait_for(wait) != std::future_status::ready) {
    Result none;
    none.error = "test: callback not called";
    return none;
  }
  return future.get();
}

Options options_for(const RedisServer& redis) {
  Options options;
  options.port = redis.port();
  options.command_timeout = 2s;  // generous: sanitizer builds on a shared machine
  options.connect_timeout = 500ms;
  options.min_backoff = 20ms;
  options.max_backoff = 200ms;
  return options;
}

// Records connection-state transitions (from the io thread).
class Recorder {
 public:
  Client::StateCallback state() {
    return [this](bool up) {
      std::lock_guard lock(mutex_);
      states_.push_back(up);
    };
  }
  std::vector<bool> states() {
    std::lock_guard lock(mutex_);
    return states_;
  }

 private:
  std::mutex mutex_;
  std::vector<bool> states_;
};

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis.start()) << redis.log(); }
  void TearDown() override { client.reset(); }

  // Creates and starts the client, waits until it is connected.
  void connect(Options options, bool wait = true) {
    client = std::make_unique<Client>(io.context(), options);
    client->set_on_state_change(recorder.state());
    client->start();
    if (wait) {
      ASSERT_TRUE(wait_until([&] { return client->connected(); })) << redis.log();
    }
  }

  RedisServer redis;
  Recorder recorder;
  IoThread io;
  std::unique_ptr<Client> client;
};

TEST(ParseAddress, AcceptsHostPortV6AndUrls) {
  auto plain = store::redis::parse_address("10.0.0.7:6380");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "10.0.0.7");
  EXPECT_EQ(plain->port, 6380);
  EXPECT_EQ(plain->db, 0);

  auto name = store::redis::parse_address("cache-1.internal:7000");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "cache-1.internal");
  EXPECT_EQ(name->port, 7000);

  auto v6 = store::redis::parse_address("[::1]:6379");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 6379);

  auto url = store::redis::parse_address("redis://127.0.0.1:6390/3");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 6390);
  EXPECT_EQ(url->db, 3);

  auto url_v6 = store::redis::parse_address("redis://[fe80::1%eth0]:6379");
  ASSERT_TRUE(url_v6);
  EXPECT_EQ(url_v6->host, "fe80::1%eth0");
  EXPECT_EQ(url_v6->db, 0);

  auto default_port = store::redis::parse_address("redis://localhost");
  ASSERT_TRUE(default_port);
  EXPECT_EQ(default_port->host, "localhost");
  EXPECT_EQ(default_port->port, 6379);
}

TEST(ParseAddress, RejectsMalformed) {
  for (const char* bad : {"",
                          "localhost",
                          ":6379",
                          "host:",
                          "host:0",
                          "host:65536",
                          "host:12ab",
                          "host:-1",
                          "::1:6379",
                          "[::1",
                          "[::1]",
                          "[::1]6379",
                          "[]:6379",
                          "redis://",
                          "redis://host:6379/",
                          "redis://host:6379/x",
                          "redis://user:pass@host:6379",
                          "http://host:6379",
                          "host:6379/2",
                          "ho st:6379"}) {
    EXPECT_FALSE(store::redis::parse_address(bad)) << bad;
  }
}

TEST_F(RedisClientTest, SetGetRoundTripIsBinarySafe) {
  connect(options_for(redis));
  const std::string key("bin\0key\r\n", 9);
  const std::string value("\0\x01\xff value with \r\n and \0 inside", 31);
  const Result set = call(*client, {"SET", key, value});
  ASSERT_TRUE(set.ok) << set.error;
  EXPECT_EQ(set.reply.kind, Reply::Kind::status);
  EXPECT_EQ(set.reply.text, "OK");

  const Result get = call(*client, {"GET", key});
  ASSERT_TRUE(get.ok) << get.error;
  ASSERT_EQ(get.reply.kind, Reply::Kind::string);
  EXPECT_EQ(get.reply.text, value);

  const Result missing = call(*client, {"GET", "no-such-key"});
  ASSERT_TRUE(missing.ok);
  EXPECT_TRUE(missing.reply.is_nil());

  ASSERT_TRUE(call(*client, {"RPUSH", "list", "a", std::string("b\0c", 3)}).ok);
  const Result range = call(*client, {"LRANGE", "list", "0", "-1"});
  ASSERT_TRUE(range.ok);
  ASSERT_EQ(range.reply.kind, Reply::Kind::array);
  ASSERT_EQ(range.reply.elements.size(), 2u);
  EXPECT_EQ(range.reply.elements[1].text, std::string("b\0c", 3));

  const Result length = call(*client, {"STRLEN", key});
  ASSERT_TRUE(length.ok);
  EXPECT_EQ(length.reply.kind, Reply::Kind::integer);
  EXPECT_EQ(length.reply.integer, static_cast<std::int64_t>(value.size()));
  EXPECT_EQ(client->stats().replies, 6u);
}

TEST_F(RedisClientTest, PipelinesAThousandCommandsInOrder) {
  connect(options_for(redis));
  constexpr int kCommands = 1000;
  std::mutex mutex;
  std::vector<std::int64_t> answers;
  std::atomic<int> failures{0};
  const auto before = client->stats();
  // Issued from the io thread in one go, so they leave in one loop iteration.
  boost::asio::post(io.context(), [&] {
    for (int i = 0; i < kCommands; ++i) {
      client->command({"INCR", "counter"}, [&](Result result) {
        std::lock_guard lock(mutex);
        if (!result.ok || result.reply.kind != Reply::Kind::integer) {
          ++failures;
          return;
        }
        answers.push_back(result.reply.integer);
      });
    }
  });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return static_cast<int>(answers.size()) + failures == kCommands;
  }));
  EXPECT_EQ(failures, 0);
  std::lock_guard lock(mutex);
  for (int i = 0; i < kCommands; ++i) ASSERT_EQ(answers[i], i + 1) << "answer " << i;
  const auto after = client->stats();
  EXPECT_EQ(after.commands - before.commands, static_cast<std::uint64_t>(kCommands));
  EXPECT_EQ(after.replies - before.replies, static_cast<std::uint64_t>(kCommands));
  EXPECT_EQ(after.in_flight, 0u);
}

TEST_F(RedisClientTest, LargeRepliesSpanningManyReads) {
  connect(options_for(redis));
  std::string value(256 * 1024, 'x');
  for (std::size_t i = 0; i < value.size(); i += 7) value[i] = static_cast<char>(i);
  ASSERT_TRUE(call(*client, {"SET", "big", value}).ok);
  constexpr int kGets = 40;  // 10 MB of replies, far more than one read
  std::atomic<int> good{0}, done{0};
  for (int i = 0; i < kGets; ++i) {
    client->command({"GET", "big"}, [&](Result result) {
      if (result.ok && result.reply.text == value) ++good;
      ++done;
    });
  }
  ASSERT_TRUE(wait_until([&] { return done == kGets; }));
  EXPECT_EQ(good, kGets);
}

TEST_F(RedisClientTest, CommandsFromManyThreads) {
  connect(options_for(redis));
  constexpr int kThreads = 4;
  constexpr int kEach = 250;
  std::atomic<int> good{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        client->command({"SADD", "set", std::to_string(t * kEach + i)}, [&](Result result) {
          if (result.ok && result.reply.integer == 1) ++good;
          ++done;
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(wait_until([&] { return done == kThreads * kEach; }));
  EXPECT_EQ(good, kThreads * kEach);
  EXPECT_EQ(call(*client, {"SCARD", "set"}).reply.integer, kThreads * kEach);
}

TEST_F(RedisClientTest, ErrorReplyIsNotATransportFailure) {
  connect(options_for(redis));
  ASSERT_TRUE(call(*client, {"SET", "text", "abc"}).ok);
  const Result wrong = call(*client, {"INCR", "text"});
  ASSERT_TRUE(wrong.ok) << wrong.error;
  EXPECT_EQ(wrong.reply.kind, Reply::Kind::error);
  EXPECT_NE(wrong.reply.text.find("not an integer"), std::string::npos) << wrong.reply.text;

  const Result unknown = call(*client, {"NOSUCHCOMMAND", "x"});
  ASSERT_TRUE(unknown.ok);
  EXPECT_TRUE(unknown.reply.is_error());

  const Result empty = call(*client, {});
  EXPECT_FALSE(empty.ok);
  EXPECT_EQ(empty.error, "empty command");

  EXPECT_EQ(client->stats().error_replies, 2u);
  // The connection is still fine.
  EXPECT_EQ(call(*client, {"GET", "text"}).reply.text, "abc");

  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !client->connected(); }));
  const Result down = call(*client, {"GET", "text"});
  EXPECT_FALSE(down.ok);
  EXPECT_EQ(down.error, "not connected");
}

TEST(RedisClientDown, NotConnectedFailsFast) {
  IoThread io;
  Options options;
  options.port = test_support::free_port();  // nobody listens
  options.min_backoff = 10ms;
  options.max_backoff = 50ms;
  Client client(io.context(), options);
  client.start();
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Result result = call(client, {"PING"});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_FALSE(result.ok);
    EXPECT_EQ(result.error, "not connected");
    EXPECT_LT(elapsed, 50ms);
  }
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(client.stats().errors, 5u);
}

TEST_F(RedisClientTest, TimesOutWhilePausedAndRecovers) {
  Options options = options_for(redis);
  options.command_timeout = 5ms;
  connect(options);
  redis.pause();
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Result result = call(*client, {"PING"});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_FALSE(result.ok);
    EXPECT_EQ(result.error, "timeout");
    EXPECT_GE(elapsed, 5ms);
    EXPECT_LT(elapsed, 100ms);
  }
  EXPECT_EQ(client->stats().timeouts, 3u);
  // Fewer than max_consecutive_timeouts: the connection is kept.
  EXPECT_TRUE(client->connected());
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return call(*client, {"PING"}).ok; }));
  EXPECT_EQ(client->stats().reconnects, 0u);
  // The late PONGs of the timed-out PINGs were dropped, not delivered to later commands.
  ASSERT_TRUE(call(*client, {"SET", "k", "v"}).ok);
  const Result get = call(*client, {"GET", "k"});
  ASSERT_TRUE(get.ok);
  EXPECT_EQ(get.reply.text, "v");
}

TEST_F(RedisClientTest, DetectsDeadPeerAfterConsecutiveTimeouts) {
  Options options = options_for(redis);
  options.command_timeout = 5ms;
  options.max_consecutive_timeouts = 4;
  connect(options);
  redis.pause();
  std::atomic<int> timeouts{0};
  for (int i = 0; i < 4; ++i) {
    client->command({"PING"}, [&](Result result) {
      if (!result.ok && result.error == "timeout") ++timeouts;
    });
  }
  ASSERT_TRUE(wait_until([&] { return timeouts == 4; }, 2s));
  // The open-but-silent connection is given up on, without any TCP error.
  ASSERT_TRUE(wait_until([&] { return !client->connected(); }, 2s));
  EXPECT_EQ(recorder.states(), (std::vector<bool>{true, false}));
  redis.resume();
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  EXPECT_TRUE(call(*client, {"PING"}).ok);
  EXPECT_EQ(recorder.states(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(client->stats().reconnects, 1u);
}

TEST_F(RedisClientTest, ReconnectsAfterRedisRestart) {
  connect(options_for(redis));
  ASSERT_TRUE(call(*client, {"SET", "k", "1"}).ok);
  redis.kill();
  ASSERT_TRUE(wait_until([&] { return !client->connected(); }));
  EXPECT_FALSE(call(*client, {"GET", "k"}).ok);
  ASSERT_TRUE(redis.restart()) << redis.log();
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  const Result set = call(*client, {"SET", "k", "2"});
  ASSERT_TRUE(set.ok) << set.error;
  EXPECT_EQ(call(*client, {"GET", "k"}).reply.text, "2");
  EXPECT_EQ(recorder.states(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(client->stats().reconnects, 1u);
  EXPECT_EQ(client->stats().connects, 2u);
}

TEST_F(RedisClientTest, SelectsTheDatabaseFromTheAddress) {
  auto parsed =
      store::redis::parse_address("redis://127.0.0.1:" + std::to_string(redis.port()) + "/3");
  ASSERT_TRUE(parsed);
  Options options = options_for(redis);
  options.db = parsed->db;
  connect(options);
  ASSERT_TRUE(call(*client, {"SET", "where", "db3"}).ok);
  EXPECT_EQ(redis.run_cli({"-n", "3", "GET", "where"}), "db3\n");
  EXPECT_EQ(redis.run_cli({"-n", "0", "EXISTS", "where"}), "0\n");
  // And again after a reconnect.
  ASSERT_TRUE(redis.restart());
  ASSERT_TRUE(wait_until([&] { return call(*client, {"SET", "again", "yes"}).ok; }));
  EXPECT_EQ(redis.run_cli({"-n", "3", "GET", "again"}), "yes\n");
}

TEST_F(RedisClientTest, StopFailsInFlightCommandsExactlyOnce) {
  Options options = options_for(redis);
  options.command_timeout = 30s;
  connect(options);
  redis.pause();
  constexpr int kCommands = 100;
  std::vector<std::atomic<int>> calls(kCommands);
  std::atomic<int> stopped{0};
  for (int i = 0; i < kCommands; ++i) {
    client->command({"PING"}, [&, i](Result result) {
      ++calls[i];
      if (!result.ok && result.error == "stopped") ++stopped;
    });
  }
  ASSERT_TRUE(wait_until([&] { return client->stats().in_flight == kCommands; }));
  client->stop();  // from this thread while the io thread runs
  EXPECT_EQ(stopped, kCommands);
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(calls[i], 1) << i;
  client->stop();
  EXPECT_FALSE(client->connected());
  // After stop, commands fail with "stopped" (on the io thread).
  EXPECT_EQ(call(*client, {"PING"}).error, "stopped");
  client.reset();
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(calls[i], 1) << i;
  redis.resume();
}

TEST_F(RedisClientTest, DestroyWithCommandsInFlight) {
  Options options = options_for(redis);
  options.command_timeout = 30s;
  connect(options);
  redis.pause();
  constexpr int kCommands = 50;
  std::vector<std::atomic<int>> calls(kCommands);
  for (int i = 0; i < kCommands; ++i) {
    client->command({"SET", "k" + std::to_string(i), "v"}, [&, i](Result) { ++calls[i]; });
  }
  // Some on the wire, and some still queued for the io thread.
  ASSERT_TRUE(wait_until([&] { return client->stats().in_flight > 0; }));
  for (int i = 0; i < kCommands; ++i) {
    client->command({"GET", "k"}, [](Result) {});
  }
  client.reset();
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(calls[i], 1) << i;
  redis.resume();
}

TEST_F(RedisClientTest, StopFromInsideACallback) {
  connect(options_for(redis));
  constexpr int kCommands = 20;
  std::vector<std::atomic<int>> calls(kCommands);
  boost::asio::post(io.context(), [&] {
    for (int i = 0; i < kCommands; ++i) {
      client->command({"PING"}, [&, i](Result) {
        ++calls[i];
        if (i == 0) client->stop();
      });
    }
  });
  ASSERT_TRUE(wait_until([&] {
    for (auto& count : calls) {
      if (count == 0) return false;
    }
    return true;
  }));
  client.reset();
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(calls[i], 1) << i;
}

TEST(RedisClientDown, DestroyWhileRedisIsDown) {
  IoThread io;
  Options options;
  options.port = test_support::free_port();
  options.min_backoff = 1ms;
  options.max_backoff = 5ms;
  constexpr int kCommands = 50;
  std::vector<std::atomic<int>> calls(kCommands);
  {
    Client client(io.context(), options);
    client.start();
    for (int i = 0; i < kCommands; ++i) client.command({"PING"}, [&, i](Result) { ++calls[i]; });
    ASSERT_TRUE(wait_until([&] { return client.stats().errors > 0; }));
  }
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(calls[i], 1) << i;
}

}  // namespace
