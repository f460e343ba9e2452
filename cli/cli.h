/* SPDX-License-Identifier: Apache-2.0 */
/* Verbs of the `reel` command; each lives in cli/cmd_<verb>.c and returns the exit status. */
#ifndef REEL_CLI_H
#define REEL_CLI_H

#define REEL_VERSION_STRING "0.1.0"

/* Verbs: each takes argv with argv[0] = the verb name and returns the exit status. */
int cmd_generate(int argc, char **argv);
int cmd_preview(int argc, char **argv);

#endif
