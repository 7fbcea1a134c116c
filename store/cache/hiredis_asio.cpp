#include "store/cache/hiredis_asio.h"

#include <boost/asio/error.hpp>

namespace store::redis {

void HiredisAsio::attach(redisAsyncContext* context, boost::asio::any_io_executor executor,
                         Runner runner) {
  auto adapter = std::make_shared<HiredisAsio>(context, std::move(executor), std::move(runner));
  adapter->self_ = adapter;
  context->ev.data = adapter.get();
  context->ev.addRead = &HiredisAsio::add_read;
  context->ev.delRead = &HiredisAsio::del_read;
  context->ev.addWrite = &HiredisAsio::add_write;
  context->ev.delWrite = &HiredisAsio::del_write;
  context->ev.cleanup = &HiredisAsio::cleanup;
}

HiredisAsio::HiredisAsio(redisAsyncContext* context, boost::asio::any_io_executor executor,
                         Runner runner)
    : context_(context),
      descriptor_(std::move(executor), context->c.fd),
      runner_(runner ? std::move(runner) : [](const std::function<void()>& event) { event(); }) {}

void HiredisAsio::add_read(void* data) {
  auto* self = static_cast<HiredisAsio*>(data);
  self->want_read_ = true;
  self->arm(true);
}

void HiredisAsio::del_read(void* data) {
  static_cast<HiredisAsio*>(data)->want_read_ = false;
}

void HiredisAsio::add_write(void* data) {
  auto* self = static_cast<HiredisAsio*>(data);
  self->want_write_ = true;
  self->arm(false);
}

void HiredisAsio::del_write(void* data) {
  static_cast<HiredisAsio*>(data)->want_write_ = false;
}

void HiredisAsio::cleanup(void* data) {
  static_cast<HiredisAsio*>(data)->detach();
}

// One wait per direction at a time. A wait that completes after del_* is simply
// not acted upon; hiredis treats add/del as "watch until told otherwise".
void HiredisAsio::arm(bool read) {
  if (!context_) return;
  bool& pending = read ? read_pending_ : write_pending_;
  if (pending) return;
  pending = true;
  descriptor_.async_wait(read ? boost::asio::posix::stream_descriptor::wait_read
                              : boost::asio::posix::stream_descriptor::wait_write,
                         [self = shared_from_this(), read](const boost::system::error_code& error) {
                           self->runner_([&] { self->on_ready(read, error); });
                         });
}

void HiredisAsio::on_ready(bool read, const boost::system::error_code& error) {
  (read ? read_pending_ : write_pending_) = false;
  if (!context_ || error == boost::asio::error::operation_aborted) return;
  // Other errors: let hiredis discover them on the socket itself.
  if (read && want_read_) {
    redisAsyncHandleRead(context_);
  } else if (!read && want_write_) {
    redisAsyncHandleWrite(context_);
  }
  // hiredis may return without re-adding (e.g. a connect still in progress):
  // keep watching whatever it still wants.
  if (context_ && want_read_) arm(true);
  if (context_ && want_write_) arm(false);
}

// Called by hiredis while it frees the context: stop watching, hand the fd back
// (hiredis closes it), and let go of the self reference. Pending waits complete
// with operation_aborted and find context_ null.
void HiredisAsio::detach() {
  if (!context_) return;
  context_->ev = {};
  context_ = nullptr;
  want_read_ = want_write_ = false;
  boost::system::error_code ignored;
  descriptor_.cancel(ignored);
  descriptor_.release();
  auto keep_alive_until_return = std::move(self_);
}

}  // namespace store::redis
