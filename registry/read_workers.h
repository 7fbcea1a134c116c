// A few threads for the API's blocking reads (the service list and the status's
// database probe read SQLite), so that no read runs on the HTTP event loop: a
// slow read (a long query, a lock held by another process, a slow disk) then
// delays only its own request, never the other sessions or the acknowledgement
// of writes. Requests queue in order; the queue needs no cap of its own because
// each HTTP session has at most one request in flight and sessions are capped
// (http.max_connections).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace registry {

class ReadWorkers {
 public:
  explicit ReadWorkers(std::size_t threads);
  // Runs every task still queued, then joins the threads: each task answers one
  // request, and every request gets its answer exactly once.
  ~ReadWorkers();
  ReadWorkers(const ReadWorkers&) = delete;
  ReadWorkers& operator=(const ReadWorkers&) = delete;

  // Runs `task` on one of the threads. Tasks must not throw.
  void post(std::function<void()> task);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace registry
