// The one slow path of both transports: a query whose service is not in memory.
// The UDP socket and each TCP connection hand it the parsed query; it fetches
// the service (store::ServiceLookup::fetch, on the cache's thread), comes back
// to the transport's executor, answers the parsed query with the result
// (QueryProcessor::resume) and gives the outcome to the transport to send.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/any_io_executor.hpp>

#include "dns/query_processor.h"

namespace dns {

struct ServerContext;

// Runs on the transport's executor with the answer in the `response` buffer
// given to fetch_then_answer (outcome.size bytes when outcome.kind is respond).
using DeliverAnswer = std::function<void(const Outcome& outcome)>;

// Counts the lookup (and a failed one) in context.stats. `deliver` must keep
// `context` and `response` alive (it holds their owner: the socket or the
// connection). `response` is written on the executor just before `deliver`
// runs, in the same handler, so it may be a buffer that everything on that
// executor shares.
void fetch_then_answer(ServerContext& context, Transport transport,
                       std::shared_ptr<const PendingQuery> pending,
                       boost::asio::any_io_executor executor, std::span<std::uint8_t> response,
                       DeliverAnswer deliver);

}  // namespace dns
