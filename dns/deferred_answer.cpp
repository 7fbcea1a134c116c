#include "dns/deferred_answer.h"

#include <boost/asio/post.hpp>
#include <string>
#include <utility>

#include "dns/server_context.h"

namespace dns {

void fetch_then_answer(ServerContext& context, Transport transport,
                       std::shared_ptr<const PendingQuery> pending,
                       boost::asio::any_io_executor executor, std::span<std::uint8_t> response,
                       DeliverAnswer deliver) {
  Stats::bump(context.stats.lookups);
  std::string service(pending->service());
  context.lookup.fetch(
      std::move(service),
      [&context, transport, pending = std::move(pending), executor = std::move(executor), response,
       deliver = std::move(deliver)](store::LookupResult result) mutable {
        // Back to the transport's thread: the processor's answer and the send happen
        // where the transport's buffers live.
        boost::asio::post(executor, [&context, transport, pending = std::move(pending), response,
                                     deliver = std::move(deliver), result = std::move(result)] {
          if (!result.ok) Stats::bump(context.stats.lookup_failures);
          deliver(context.processor.resume(*pending, transport, response, result));
        });
      });
}

}  // namespace dns
