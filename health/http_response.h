// The part of an HTTP/1.x response a health probe reads: the status line and the
// headers. Pure (bytes in, verdict out) so every malformed case is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace health {

struct ResponseHead {
  int status = 0;
  std::optional<double> load;  // `X-Load`, when present, finite and >= 0
};

struct HeadParse {
  enum class State { incomplete, complete, malformed };
  State state = State::incomplete;
  ResponseHead head;  // complete only
  std::string error;  // malformed only
};

// Parses the response head at the start of `data` (the bytes read so far). The
// head ends with an empty line; what follows (the body) is ignored.
HeadParse parse_response_head(std::string_view data);

// Whether a status passes: 2xx only (a 3xx is not followed).
bool status_passes(int status);

// The request a probe sends; `host` is the bracketed literal for IPv6.
std::string build_request(std::string_view host, std::uint16_t port, std::string_view path,
                          std::string_view user_agent);

// A path may go verbatim into a request line: it starts with '/' and has no
// controls, spaces or line breaks (registration checks this too).
bool safe_request_path(std::string_view path);

}  // namespace health
