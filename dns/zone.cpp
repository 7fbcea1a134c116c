#include "dns/zone.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dns/layout.h"
#include "dns/ldns.h"

namespace dns {

namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
struct LdnsRrFree {
  void operator()(ldns_rr* rr) const { ldns_rr_free(rr); }
};
struct LdnsBufferFree {
  void operator()(ldns_buffer* buffer) const { ldns_buffer_free(buffer); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Default TTL for records without one before any $TTL line (ldns's default).
constexpr std::uint32_t kDefaultTtl = 3600;

std::string record_text(const ldns_rr* rr) {
  char* text = ldns_rr2str(rr);
  if (text == nullptr) return "<record>";
  std::string result(text);
  std::free(text);
  while (!result.empty() && (result.back() == '\n' || result.back() == ' ')) result.pop_back();
  return result;
}

std::string_view key_of(const Name& name) {
  return {reinterpret_cast<const char*>(name.wire().data()), name.wire().size()};
}

// Offset of the domain name in RDATA that names a host needing address records
// in the additional section, for the types that have one.
std::optional<std::size_t> additional_name_offset(std::uint16_t type) {
  switch (type) {
    case rrtype::ns:
      return 0;
    case rrtype::mx:
      return 2;  // after PREFERENCE
    case rrtype::srv:
      return 6;  // after PRIORITY, WEIGHT, PORT
    default:
      return std::nullopt;
  }
}

}  // namespace

const StaticRRset* ZoneNode::find(std::uint16_t type) const {
  for (const StaticRRset& rrset : rrsets) {
    if (rrset.type == type) return &rrset;
  }
  return nullptr;
}

std::span<const std::uint8_t> Zone::soa_rdata(std::span<std::uint8_t> out) const {
  return soa_rdata(out, serial());
}

std::span<const std::uint8_t> Zone::soa_rdata(std::span<std::uint8_t> out,
                                              std::uint32_t serial) const {
  const std::vector<std::uint8_t>& rdata = soa().rdatas.front();
  std::copy(rdata.begin(), rdata.end(), out.begin());
  // SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM are the last 20 bytes.
  store_u32(&out[rdata.size() - 20], serial);
  return out.first(rdata.size());
}

const ZoneNode* Zone::find(const Name& name) const {
  const auto it = nodes_.find(key_of(name));
  return it == nodes_.end() ? nullptr : &it->second;
}

class Zone::Loader {
 public:
  Loader(std::string_view source, std::string_view origin) : source_(source) {
    auto apex = Name::from_text(origin);
    if (!apex) fail("invalid zone origin '" + std::string(origin) + "'");
    zone_->apex_ = *apex;
  }

  std::shared_ptr<const Zone> load(std::FILE* file) {
    read_records(file);
    check_apex();
    add_empty_non_terminals();
    link_additional_nodes();
    return std::move(zone_);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw ZoneError(std::string(source_) + ": " + what);
  }
  [[noreturn]] void fail_at(int line, const std::string& what) const {
    throw ZoneError(std::string(source_) + ":" + std::to_string(line) + ": " + what);
  }

 private:
  // Reads the records one at a time rather than with ldns_zone_new_frm_fp_l, which
  // leaks the records it read before a syntax error and reports no line numbers
  // for the records it accepts. TTL defaults follow the same rules: $TTL (RFC 2308
  // section 4), else the last TTL stated (RFC 1035 section 5.1).
  void read_records(std::FILE* file) {
    const std::string origin_text = zone_->apex_.to_text();
    ParserNames names{ldns_dname_new_frm_str(origin_text.c_str()),
                      ldns_dname_new_frm_str(origin_text.c_str())};
    if (names.origin == nullptr || names.previous == nullptr) {
      fail("invalid zone origin '" + origin_text + "'");
    }
    std::uint32_t default_ttl = kDefaultTtl;
    bool ttl_directive_seen = false;
    int line = 0;  // ldns counts the newlines it has read
    while (!std::feof(file)) {
      ldns_rr* parsed = nullptr;
      std::uint32_t ttl = default_ttl;
      const ldns_status status =
          ldns_rr_new_frm_fp_l(&parsed, file, &ttl, &names.origin, &names.previous, &line);
      const std::unique_ptr<ldns_rr, LdnsRrFree> rr(parsed);
      switch (status) {
        case LDNS_STATUS_OK:
          if (!ttl_directive_seen) default_ttl = ldns_rr_ttl(rr.get());
          add_record(rr.get(), line);
          break;
        case LDNS_STATUS_SYNTAX_TTL:
          default_ttl = ttl;
          ttl_directive_seen = true;
          break;
        case LDNS_STATUS_SYNTAX_EMPTY:
        case LDNS_STATUS_SYNTAX_ORIGIN:
          break;
        case LDNS_STATUS_SYNTAX_INCLUDE:
          fail_at(line, "$INCLUDE is not supported");
        default:
          fail_at(line, ldns_get_errorstr_by_id(status));
      }
    }
    if (!soa_seen_) fail("no SOA record (the apex " + origin_text + " needs one)");
  }

  void add_record(const ldns_rr* rr, int line) {
    const ldns_rdf* owner_rdf = ldns_rr_owner(rr);
    Name owner;
    const std::span<const std::uint8_t> owner_wire(ldns_rdf_data(owner_rdf),
                                                   ldns_rdf_size(owner_rdf));
    if (!read_name(owner_wire, 0, Compression::forbidden, &owner)) {
      fail_at(line, "invalid owner name in '" + record_text(rr) + "'");
    }
    const auto type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
    check_record(rr, owner, type, line);
    if (type == rrtype::soa) {
      if (soa_seen_) fail_at(line, "'" + record_text(rr) + "': a second SOA record");
      soa_seen_ = true;
    }

    ZoneNode& node = zone_->nodes_[std::string(key_of(owner))];
    node.name = owner;
    auto rrset = std::ranges::find(node.rrsets, type, &StaticRRset::type);
    if (rrset == node.rrsets.end()) {
      const auto position = std::ranges::upper_bound(node.rrsets, type, {}, &StaticRRset::type);
      rrset = node.rrsets.insert(position, StaticRRset{type, ldns_rr_ttl(rr), {}, {}});
    }
    std::vector<std::uint8_t> rdata = rdata_wire(rr);
    if (std::ranges::find(rrset->rdatas, rdata) == rrset->rdatas.end()) {
      rrset->rdatas.push_back(std::move(rdata));  // duplicates collapse, as in an RRset
    }
    const bool has_cname = node.find(rrtype::cname) != nullptr;
    if (has_cname && node.rrsets.size() > 1) {
      fail_at(line, "'" + record_text(rr) + "': a CNAME cannot share its name with other data");
    }
  }

  void check_record(const ldns_rr* rr, const Name& owner, std::uint16_t type, int line) const {
    const Name& apex = zone_->apex_;
    const auto reject = [&](std::string_view why) {
      fail_at(line, "'" + record_text(rr) + "': " + std::string(why));
    };
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) reject("only class IN is served");
    if (!owner.is_subdomain_of(apex)) reject("outside the zone " + apex.to_text());
    const bool at_apex = owner == apex;
    if (type == rrtype::soa && !at_apex) reject("SOA must be at the apex");
    if (type == rrtype::ns && !at_apex) reject("delegations (NS below the apex) are not supported");
    if (type == rrtype::dname) reject("DNAME is not supported");
    if (type == rrtype::opt || type >= rrtype::tkey) reject("meta types cannot be zone data");
    if (owner.label_count() > 0 && owner.label(0) == "*") reject("wildcards are not supported");
    if (owner.label_count() > apex.label_count()) {
      const std::string_view below_apex = owner.label(owner.label_count() - apex.label_count() - 1);
      if (below_apex == layout::kServiceLabel || below_apex == layout::kInstanceLabel) {
        reject("names under " + std::string(below_apex) + "." + apex.to_text() +
               " are reserved for registered services");
      }
    }
  }

  std::vector<std::uint8_t> rdata_wire(const ldns_rr* rr) const {
    std::unique_ptr<ldns_buffer, LdnsBufferFree> buffer(ldns_buffer_new(512));
    if (!buffer || ldns_rr_rdata2buffer_wire(buffer.get(), rr) != LDNS_STATUS_OK) {
      fail("cannot encode '" + record_text(rr) + "'");
    }
    const std::uint8_t* begin = ldns_buffer_begin(buffer.get());
    return {begin, begin + ldns_buffer_position(buffer.get())};
  }

  void check_apex() {
    const ZoneNode* apex = zone_->find(zone_->apex_);
    const StaticRRset* soa = apex != nullptr ? apex->find(rrtype::soa) : nullptr;
    if (soa == nullptr) fail("the SOA record is not at the apex " + zone_->apex_.to_text());
    if (apex->find(rrtype::ns) == nullptr) {
      fail("no NS record at the apex " + zone_->apex_.to_text());
    }
    const std::vector<std::uint8_t>& rdata = soa->rdatas.front();
    if (rdata.size() < 20) fail("malformed SOA record");
    const std::uint32_t minimum = load_u32(&rdata[rdata.size() - 4]);
    zone_->negative_ttl_ = std::min(soa->ttl, minimum);
    zone_->file_serial_ = load_u32(&rdata[rdata.size() - 20]);
    zone_->serial_ = zone_->file_serial_;
  }

  // Every name between a record's owner and the apex exists (RFC 4592 calls them
  // empty non-terminals): NODATA there, not NXDOMAIN.
  void add_empty_non_terminals() {
    std::vector<Name> missing;
    const std::size_t apex_labels = zone_->apex_.label_count();
    for (const auto& [key, node] : zone_->nodes_) {
      for (std::size_t skip = 1; skip + apex_labels < node.name.label_count(); ++skip) {
        Name ancestor;
        read_name(node.name.suffix(skip), 0, Compression::forbidden, &ancestor);
        if (zone_->find(ancestor) == nullptr) missing.push_back(ancestor);
      }
    }
    for (const Name& name : missing) zone_->nodes_[std::string(key_of(name))].name = name;
  }

  void link_additional_nodes() {
    for (auto& [key, node] : zone_->nodes_) {
      for (StaticRRset& rrset : node.rrsets) {
        const auto offset = additional_name_offset(rrset.type);
        if (!offset) continue;
        for (const std::vector<std::uint8_t>& rdata : rrset.rdatas) {
          Name target;
          if (!read_name(rdata, *offset, Compression::forbidden, &target)) continue;
          const ZoneNode* target_node = zone_->find(target);
          if (target_node == nullptr) continue;
          const bool has_address = target_node->find(rrtype::a) || target_node->find(rrtype::aaaa);
          if (has_address && std::ranges::find(rrset.additional_nodes, target_node) ==
                                 rrset.additional_nodes.end()) {
            rrset.additional_nodes.push_back(target_node);
          }
        }
      }
    }
  }

  // The origin ($ORIGIN) and previous owner that ldns updates while reading.
  struct ParserNames {
    ldns_rdf* origin;
    ldns_rdf* previous;
    ~ParserNames() {
      if (origin != nullptr) ldns_rdf_deep_free(origin);
      if (previous != nullptr) ldns_rdf_deep_free(previous);
    }
  };

  std::string_view source_;
  std::shared_ptr<Zone> zone_{new Zone()};
  bool soa_seen_ = false;
};

std::shared_ptr<const Zone> Zone::load(const std::string& path, std::string_view origin) {
  Loader loader(path, origin);
  FilePtr file(std::fopen(path.c_str(), "r"));
  if (!file) loader.fail(std::string("cannot open: ") + std::strerror(errno));
  return loader.load(file.get());
}

std::shared_ptr<const Zone> Zone::parse(std::string_view text, std::string_view origin,
                                        std::string_view source) {
  Loader loader(source, origin);
  // fmemopen needs a mutable buffer in some C libraries.
  std::string copy(text);
  if (copy.empty()) copy.push_back('\n');  // fmemopen rejects an empty buffer
  FilePtr file(fmemopen(copy.data(), copy.size(), "r"));
  if (!file) loader.fail("cannot read zone text");
  return loader.load(file.get());
}

}  // namespace dns
