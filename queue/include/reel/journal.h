/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's durable journal: an append-only file of checksummed records with
 * group commit, replay with torn-tail recovery, and compaction.
 *
 * File layout (docs/protocol.md, "Durability"): the 8-byte magic "REELJNL1", then
 * records of [u32 little-endian payload length][u32 little-endian CRC-32C of the
 * payload][payload]. The journal does not interpret payloads (the broker writes
 * JSON objects). Records are appended to a memory buffer; reel_journal_commit()
 * writes the whole buffer with one write() and one fdatasync(): everything
 * appended since the last commit becomes durable together (group commit).
 *
 * Replay at open: a last record that is incomplete or fails its checksum is a
 * write torn by a crash; it is dropped and the file truncated before it. A bad
 * record followed by more data is corruption: open fails with EFORMAT naming the
 * byte offset, and the file is left untouched for inspection.
 *
 * One process at a time: open takes an exclusive flock() on DIR/lock.
 */
#ifndef REEL_JOURNAL_H
#define REEL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_JOURNAL_MAGIC         "REELJNL1"
#define REEL_JOURNAL_MAGIC_LEN     8
#define REEL_JOURNAL_RECORD_HEADER 8
/* Largest payload of one record. */
#define REEL_JOURNAL_MAX_RECORD (16u << 20)

/* CRC-32C of n bytes, continuing from `crc` (0 to start). Uses SSE4.2 when the CPU has it. */
uint32_t reel_crc32c(uint32_t crc, const void *data, size_t n);
/* The same function without the hardware path (for tests). */
uint32_t reel_crc32c_portable(uint32_t crc, const void *data, size_t n);

typedef struct reel_journal reel_journal;

/* Called once per valid record during replay, in file order. A non-OK return stops the open with that error. */
typedef reel_status (*reel_journal_replay_fn)(void *ud, const char *data, size_t len, reel_error *err);

typedef struct reel_journal_info {
  uint64_t records_replayed;
  uint64_t bytes_replayed;  /* file size after recovery */
  uint64_t truncated_bytes; /* bytes of a torn last record that were dropped */
  int created;              /* 1 when the journal file was new */
} reel_journal_info;

/*
 * Opens (creating when absent) DIR/journal.log, replaying every record through
 * `replay` (may be NULL). `dir` must exist. Errors: ESTATE when another process
 * holds the lock, EFORMAT for corruption (field "journal.log@OFFSET"), EIO.
 * On failure *out is NULL and nothing needs to be closed.
 */
reel_status reel_journal_open(const char *dir, reel_journal_replay_fn replay, void *ud,
                              reel_journal_info *info /* OUT: may be NULL */, reel_journal **out /* OUT: */,
                              reel_error *err);

/* Closes the file and releases the lock; pending (uncommitted) records are discarded. Accepts NULL. */
void reel_journal_close(reel_journal **j);

/* Buffers one record (1..REEL_JOURNAL_MAX_RECORD bytes). ELIMIT for an oversize record, ENOMEM. */
reel_status reel_journal_append(reel_journal *j, const void *data, size_t len, reel_error *err);

/* Records buffered since the last commit. */
size_t reel_journal_pending(const reel_journal *j);

/*
 * Writes the buffered records and fdatasync()s the file. With nothing pending it
 * does nothing. EIO on failure: the records' durability is then unknown and the
 * caller must stop (the broker exits; a restart replays what reached the disk).
 */
reel_status reel_journal_commit(reel_journal *j, reel_error *err);

/*
 * Asynchronous group commit, so that a caller's loop keeps working while the
 * disk syncs: reel_journal_commit_start() hands the pending records to a
 * background thread (one write + fdatasync) and returns at once; records
 * appended meanwhile form the next group. At most one commit is in flight.
 * reel_journal_commit_fd() becomes readable when it is done, and
 * reel_journal_commit_finish() collects the result. reel_journal_commit(),
 * reel_journal_compact() and reel_journal_close() wait for a commit in flight.
 */
/* Starts a commit of the pending records (does nothing without any). ESTATE when one is in flight. */
reel_status reel_journal_commit_start(reel_journal *j, reel_error *err);
/* Nonzero while a commit is in flight. */
int reel_journal_commit_busy(const reel_journal *j);
/* A file descriptor that polls readable when the commit in flight has finished; -1 before the first start. */
int reel_journal_commit_fd(const reel_journal *j);
/*
 * Collects the commit in flight: REEL_OK when it is on disk, EAGAIN when it is
 * still running and `wait` is 0, EIO (err set) when it failed. OK when none is in flight.
 */
reel_status reel_journal_commit_finish(reel_journal *j, int wait, reel_error *err);

/* Bytes in the file, including records committed but not those pending. */
uint64_t reel_journal_size(const reel_journal *j);

/* Number of commits (fdatasync calls) so far. */
uint64_t reel_journal_commits(const reel_journal *j);

/*
 * Called by reel_journal_compact() to write the snapshot: it appends the records
 * that describe the whole live state with reel_journal_append(j, ...), which
 * during compaction go to the new file.
 */
typedef reel_status (*reel_journal_snapshot_fn)(void *ud, reel_journal *j, reel_error *err);

/*
 * Rewrites the journal as a snapshot: writes DIR/journal.tmp with the records
 * `snapshot` appends, fsyncs it, renames it over journal.log and fsyncs DIR.
 * Must be called with nothing pending (ESTATE otherwise). On failure the old
 * journal stays in use and unchanged.
 */
reel_status reel_journal_compact(reel_journal *j, reel_journal_snapshot_fn snapshot, void *ud, reel_error *err);

/* When nonzero, commits skip fdatasync (benchmarks of the protocol cost alone; not durable). */
void reel_journal_set_nosync(reel_journal *j, int nosync);

#ifdef __cplusplus
}
#endif
#endif
