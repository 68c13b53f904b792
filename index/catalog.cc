#include "index/catalog.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/public_message.h"
#include "storage/log.h"
#include "storage/scoped_fd.h"
#include "storage/status_macros.h"

namespace strata {
namespace {
namespace fs = std::filesystem;
// The catalog's own records in the collections family (collection names start with neither
// '\0' nor '\x01'): the next collection id, and a dropped collection's id while its records are
// still being deleted (RecordPurger::PurgeKey: written with the drop, deleted once they all are;
// ids are never reused, so leftovers are never read meanwhile).
constexpr char kNextIdKey[] = "\x01next_collection_id";
// The answer for a name no collection has: a name no collection could have says why.
absl::Status Missing(const std::string& name) {
  RETURN_IF_ERROR(CheckName("collection name", name));
  return absl::NotFoundError(absl::StrCat("collection '", ShownName(name), "' does not exist"));
}

// 128 random bits as 32 hex digits.
std::string NewUid() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&out, absl::Hex(rd(), absl::kZeroPad8));
  return out;
}
// What a collection record that does not parse still says of `field` ("field=value" on a line of
// its own), or "".
std::string FieldInRecord(absl::string_view record, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(record, '\n')) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, "=")) {
      return std::string(line);
    }
  }
  return "";
}

// `text` as an id (below 2^31), or `otherwise`.
uint32_t ParsedOr(const std::string& text, uint32_t otherwise) {
  uint32_t id = 0;
  return absl::SimpleAtoi(text, &id) && id < (1u << 31) ? id : otherwise;
}
}  // namespace

Catalog::~Catalog() {
  MutexLock change_lock(&change_mu_);  // (a create or drop in flight finishes first)
  purger_.reset();                     // (between two batches: the next start goes on)
  MutexLock lock(&mu_);
  // A collection may outlive the catalog (a caller holding it): its background threads must not.
  for (auto& [name, c] : collections_) c->StopMaintenance();
  collections_.clear();
}

std::string Catalog::CollectionDir(uint32_t id) const {
  return (fs::path(data_dir_) / "collections" / std::to_string(id)).string();
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& data_dir,
                                                       const CollectionOptions& options,
                                                       const MetadataStoreOptions& store_options) {
  Env& env = options.env != nullptr ? *options.env : *Env::Default();
  const std::string collections = (fs::path(data_dir) / "collections").string();
  const std::string meta = (fs::path(data_dir) / "meta").string();
  RETURN_IF_ERROR(CreateDirs(env, collections));  // each new directory synced into its parent
  MetadataStoreOptions so = store_options;
  if (so.env == nullptr) so.env = options.env;
  ASSIGN_OR_RETURN(auto store, MetadataStore::Open(meta, so));
  // RocksDB syncs its own directory, not the entry naming it in `data_dir`; and a run that
  // stopped between making a directory and syncing its parent left it unsynced: every open
  // syncs `data_dir` (cheap).
  RETURN_IF_ERROR(env.SyncDir(data_dir));
  std::unique_ptr<Catalog> cat(new Catalog(data_dir, options, std::move(store)));

  std::vector<CollectionConfig> configs;
  std::vector<Unopened> unparsed;  // collection records that do not parse
  std::vector<uint32_t> purges;    // dropped collections whose records are not all deleted yet
  uint32_t next_id = 1;
  RETURN_IF_ERROR(cat->store_->Scan(Cf::kCollections, "", [&](auto key, auto value) {
    if (key == kNextIdKey) {
      if (value.size() != 4) return absl::DataLossError("catalog: malformed next id");
      next_id = std::max(next_id, ReadU32(value, 0));
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(std::optional<uint32_t> purge, RecordPurger::ParsePurgeKey(key));
    if (purge.has_value()) {
      purges.push_back(*purge);
      next_id = std::max(next_id, *purge + 1);
      return absl::OkStatus();
    }
    auto c = CollectionConfig::Parse(value);
    if (absl::IsDataLoss(c.status())) {
      // One collection's record, damaged: that collection is kept apart (as one whose records
      // cannot be read), not the whole catalog. Its id and uid, where the record still says
      // them, keep its directory and its tenant keys, and let a drop delete its records. (A
      // record of a format this Strata does not know - a newer one's - still fails the open:
      // it is not damage, and nothing of it may be dropped.)
      CollectionConfig partial;
      partial.name = std::string(key);
      partial.id = ParsedOr(FieldInRecord(value, "id"), 0u);
      partial.uid = FieldInRecord(value, "uid");
      next_id = std::max(next_id, partial.id + 1);
      unparsed.push_back(
          {partial, absl::DataLossError(absl::StrCat("collection '", ShownName(key),
                                                     "': its catalog record cannot be read (",
                                                     c.status().message(), ")"))});
      return absl::OkStatus();
    }
    if (!c.ok()) {
      return absl::Status(c.status().code(), absl::StrCat("catalog: record of collection '", key,
                                                          "': ", c.status().message()));
    }
    configs.push_back(*c);
    next_id = std::max(next_id, c->id + 1);
    return absl::OkStatus();
  }));

  absl::flat_hash_set<std::string> known;
  for (const CollectionConfig& c : configs) known.insert(std::to_string(c.id));
  // A damaged record's id that another collection, or a drop under way, has is not trusted (a
  // drop of it would delete that one's files and records): unknown.
  for (Unopened& u : unparsed) {
    if (known.contains(std::to_string(u.config.id)) ||
        std::find(purges.begin(), purges.end(), u.config.id) != purges.end()) {
      u.config.id = 0;
    }
  }
  for (const Unopened& u : unparsed) {
    if (u.config.id != 0) known.insert(std::to_string(u.config.id));
  }
  for (uint32_t id : purges) {
    if (known.contains(std::to_string(id))) {
      return absl::DataLossError(
          absl::StrCat("catalog: collection id ", id, " is both listed and being dropped"));
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> entries, env.GetChildren(collections));
  // (A record that does not say its id may own any of them: none is removed then.)
  const bool owners_known = std::none_of(unparsed.begin(), unparsed.end(),
                                         [](const Unopened& u) { return u.config.id == 0; });
  for (const std::string& name : entries) {
    if (known.contains(name)) continue;
    const std::string path = (fs::path(collections) / name).string();
    if (!owners_known) {
      Log(LogLevel::kWarning, "keeping %s: a collection record that cannot be read may own it",
          path);
      continue;
    }
    Log(LogLevel::kWarning, "removing %s: no collection owns it (a drop or create cut short)",
        path);
    RETURN_IF_ERROR(env.RemoveTree(path));
  }

  // Collections made before uids existed get one now.
  WriteBatch uids;
  for (CollectionConfig& c : configs) {
    if (!c.uid.empty()) continue;
    c.uid = NewUid();
    uids.Put(Cf::kCollections, c.name, c.Serialize());
  }
  if (uids.count() > 0) RETURN_IF_ERROR(cat->store_->Write(&uids, /*sync=*/true));

  MutexLock change_lock(&cat->change_mu_);
  MutexLock lock(&cat->mu_);
  cat->next_id_ = next_id;
  for (Unopened& u : unparsed) {
    Log(LogLevel::kError,
        "%s; it is left as it is and the other collections open. Dropping it deletes it and "
        "frees its name",
        u.why.message());
    u.why = absl::DataLossError(absl::StrCat(
        u.why.message(),
        " (it could not be opened at start, and its data is left as it is: a restore of the data "
        "directory may bring it back; dropping it deletes it)"));
    cat->unopened_[u.config.name] = std::move(u);
  }
  for (const CollectionConfig& c : configs) {
    auto col = Collection::Open(cat->store_.get(), cat->CollectionDir(c.id), c, options);
    if (!col.ok()) {
      const std::string named = absl::StrCat("collection '", c.name, "'");
      const absl::string_view message = col.status().message();
      const std::string why = absl::StartsWith(message, named) ? std::string(message)
                                                               : absl::StrCat(named, ": ", message);
      // A full disk (an open makes room for the rows its collection wrote since its build) keeps
      // only this collection closed: the others open, and a restart once space is freed opens
      // it, its data as it was.
      if (IsDiskFull(col.status())) {
        Log(LogLevel::kError,
            "%s could not be opened: the disk has no room for what it reads at start (%s); it is "
            "left as it is and the other collections open. Free disk space, then restart the "
            "server",
            named, why);
        cat->unopened_[c.name] = Unopened{
            c, WithPublicMessage(
                   absl::ResourceExhaustedError(absl::StrCat(
                       why,
                       " (the disk had no room to open it at start; its data is left as it is: "
                       "free disk space, then restart the server)")),
                   absl::StrCat(named,
                                " could not be opened for want of disk space on the "
                                "server; its administrator can free it"))};
        continue;
      }
      // A record of its own that cannot be read, or holds a value no check lets by, is the
      // collection's damage; anything else (an I/O error, memory) is the machine's: the start
      // fails.
      if (!absl::IsDataLoss(col.status()) && !absl::IsInvalidArgument(col.status())) {
        return absl::Status(col.status().code(), why);
      }
      Log(LogLevel::kError,
          "%s could not be opened (%s); it is left as it is and the other collections open. "
          "Dropping it deletes it and frees its name",
          named, why);
      cat->unopened_[c.name] =
          Unopened{c, absl::DataLossError(absl::StrCat(
                          why,
                          " (it could not be opened at start, and its data is left as it "
                          "is: a restore of the data directory may bring it back; "
                          "dropping it deletes it)"))};
      continue;
    }
    cat->collections_[c.name] = std::shared_ptr<Collection>(std::move(*col));
  }
  Log(LogLevel::kInfo, "catalog %s: %d collections", data_dir, configs.size());
  // Records no collection reads: deleted beside the calls the catalog serves from now on (once
  // the collections are open, so that the purge's writes never come between Open's own).
  for (uint32_t id : purges) {
    Log(LogLevel::kWarning, "catalog: finishing the drop of collection id %d (cut short)", id);
    cat->purger_->Enqueue(id);
  }
  return cat;
}

absl::StatusOr<std::shared_ptr<Collection>> Catalog::Create(CollectionConfig config) {
  RETURN_IF_ERROR(config.Validate());
  MutexLock change_lock(&change_mu_);
  {
    MutexLock lock(&mu_);
    if (collections_.count(config.name) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("collection '", config.name, "' already exists"));
    }
    if (auto u = unopened_.find(config.name); u != unopened_.end()) {
      return absl::AlreadyExistsError(
          absl::StrCat("collection '", config.name,
                       "' already exists, and could not be opened: ", u->second.why.message()));
    }
  }
  config.id = next_id_;
  config.uid = NewUid();
  config.index_generation = 0;
  WriteBatch batch;
  batch.Put(Cf::kCollections, config.name, config.Serialize());
  std::string next;
  AppendU32(&next, next_id_ + 1);
  batch.Put(Cf::kCollections, kNextIdKey, next);
  RETURN_IF_ERROR(store_->Write(&batch, /*sync=*/true));
  ++next_id_;
  ASSIGN_OR_RETURN(auto col,
                   Collection::Open(store_.get(), CollectionDir(config.id), config, options_));
  std::shared_ptr<Collection> shared(std::move(col));
  {
    MutexLock lock(&mu_);
    collections_[config.name] = shared;
  }
  Log(LogLevel::kInfo, "created collection '%s' (%s, dim %d, %s)", config.name,
      ElementTypeName(config.type), config.dim, MetricName(config.metric));
  return shared;
}

absl::Status Catalog::Drop(const std::string& name, std::string* uid) {
  uint32_t id = 0;
  bool unopened = false;
  {
    MutexLock change_lock(&change_mu_);
    std::shared_ptr<Collection> open;
    {
      MutexLock lock(&mu_);
      if (auto it = collections_.find(name); it != collections_.end()) {
        open = it->second;
        id = open->config().id;
        if (uid != nullptr) *uid = open->config().uid;
      } else if (auto u = unopened_.find(name); u != unopened_.end()) {
        id = u->second.config.id;
        if (uid != nullptr) *uid = u->second.config.uid;
      } else {
        return Missing(name);
      }
    }
    // The drop itself: the collection's record goes and its purge record comes, in one synced
    // write. An open collection is marked first (which waits out a write or a build's commit
    // under way), so that nothing of it commits after. If the write fails it stays listed but
    // refuses calls until it is dropped again or the server restarts: the write may have reached
    // the log all the same, so whether it took effect is not known before.
    // A store that refuses every write already refuses this one before it reaches the log: the
    // drop certainly did not happen, and the collection goes on serving reads.
    if (const std::string refused = store_->WritesRefused(); !refused.empty()) {
      return WithPublicMessage(
          absl::UnavailableError(absl::StrCat("cannot drop collection '", name,
                                              "' now: the metadata store refuses every write (",
                                              refused, ")")),
          absl::StrCat("cannot drop collection '", name,
                       "' now: the server refuses every write until its administrator restarts "
                       "it"));
    }
    if (open != nullptr) open->MarkDropped();
    WriteBatch batch;
    batch.Delete(Cf::kCollections, name);
    // (Id 0: a record too damaged to say its id; collections are numbered from 1.)
    if (id != 0) batch.Put(Cf::kCollections, RecordPurger::PurgeKey(id), "");
    if (absl::Status s = store_->Write(&batch, /*sync=*/true); !s.ok()) {
      if (open != nullptr) open->DropFailed(s);
      return s;
    }
    if (open != nullptr) open->DropCommitted();
    {
      MutexLock lock(&mu_);
      collections_.erase(name);
      unopened_.erase(name);
    }
    unopened = open == nullptr;
    // (Queued under the lock: a catalog closing waits for it, then stops the purger.)
    if (id != 0) purger_->Enqueue(id);
  }
  if (id == 0) {
    Log(LogLevel::kWarning,
        "dropped collection '%s'; its record did not say its id, so its vectors and payloads in "
        "the metadata store are not deleted (they are no collection's and take only disk)",
        name);
    return absl::OkStatus();
  }
  if (unopened) {
    // (An open collection's files go with its last reference. If this fails, the next start
    // removes the directory: no collection owns it.)
    Env& env = options_.env != nullptr ? *options_.env : *Env::Default();
    const absl::Status removed = env.RemoveTree(CollectionDir(id));
    if (!removed.ok()) {
      Log(LogLevel::kWarning, "dropped collection '%s': its directory stays until a restart: %s",
          name, removed.message());
    }
  }
  Log(LogLevel::kInfo, "dropped collection '%s' (id %d; its records are deleted in the background)",
      name, id);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Collection>> Catalog::Find(const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    if (auto u = unopened_.find(name); u != unopened_.end()) return u->second.why;
    return Missing(name);
  }
  return it->second;
}

std::vector<Catalog::Unopened> Catalog::ListUnopened() const {
  MutexLock lock(&mu_);
  std::vector<Unopened> out;
  for (const auto& [name, u] : unopened_) out.push_back(u);
  return out;
}

std::vector<std::shared_ptr<Collection>> Catalog::List() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Collection>> out;
  for (const auto& [name, c] : collections_) out.push_back(c);
  return out;
}

}  // namespace strata
