// Drives a hiredis redisAsyncContext from a Boost.Asio executor (hiredis 0.14 ships
// no Asio adapter). The context's socket is watched with
// posix::stream_descriptor::async_wait; hiredis keeps owning the file descriptor:
// on cleanup the descriptor is released, never closed.
//
// Include this header only from the .cpp files that talk to hiredis.
#pragma once

#include <hiredis/async.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>

namespace store::redis {

class HiredisAsio : public std::enable_shared_from_this<HiredisAsio> {
 public:
  // Every readiness event is handed to the runner, which must call `event` (or
  // drop it if its owner is gone). The owner uses it to take its lock around the
  // call into hiredis; the default runner just calls it.
  using Runner = std::function<void(const std::function<void()>& event)>;

  // Installs the event hooks on `context`. Call it right after redisAsyncConnect
  // and before redisAsyncSetConnectCallback (which asks for the first write
  // event). The adapter lives until hiredis calls its cleanup hook (when the
  // context is freed) and its last pending wait has completed.
  static void attach(redisAsyncContext* context, boost::asio::any_io_executor executor,
                     Runner runner = {});

  HiredisAsio(redisAsyncContext* context, boost::asio::any_io_executor executor, Runner runner);
  HiredisAsio(const HiredisAsio&) = delete;
  HiredisAsio& operator=(const HiredisAsio&) = delete;

 private:
  static void add_read(void* data);
  static void del_read(void* data);
  static void add_write(void* data);
  static void del_write(void* data);
  static void cleanup(void* data);

  void arm(bool read);
  void on_ready(bool read, const boost::system::error_code& error);
  void detach();

  redisAsyncContext* context_;  // null once hiredis has cleaned up
  boost::asio::posix::stream_descriptor descriptor_;
  Runner runner_;
  bool want_read_ = false;
  bool want_write_ = false;
  bool read_pending_ = false;
  bool write_pending_ = false;
  std::shared_ptr<HiredisAsio> self_;  // keeps the adapter alive while attached
};

}  // namespace store::redis
