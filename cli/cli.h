/* SPDX-License-Identifier: Apache-2.0 */
/* Verbs of the `reel` command; each lives in cli/cmd_<verb>.c and returns the exit status. */
#ifndef REEL_CLI_H
#define REEL_CLI_H

#define REEL_VERSION_STRING "0.1.0"

/* Verbs: each takes argv with argv[0] = the verb name and returns the exit status. */
int cmd_generate(int argc, char **argv);
int cmd_preview(int argc, char **argv);
/* Queue verbs (built with REEL_WITH_ZMQ): cmd_broker.c, cmd_worker.c, cmd_queue.c, cmd_batch.c. */
int cmd_broker(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_jobs(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
/* Benchmarks (cli/cmd_bench.c, cli/cmd_tune.c; the machinery in cli/bench.h). */
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);

#endif
