/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the cmocka tests: cmocka's headers in the right order,
 * temporary directories, file helpers and locating the source and build trees.
 */
#ifndef REEL_TESTUTIL_H
#define REEL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first. */
#include <cmocka.h>

/* Source tree root (from $REEL_SOURCE_DIR, else the compile-time path). Never NULL. */
const char *tu_source_dir(void);
/* Build tree root (from $REEL_BINARY_DIR). Never NULL. */
const char *tu_binary_dir(void);

/* Creates a fresh temporary directory and returns its path in buf (buf >= 256 bytes). Fails the test on error. */
void tu_mkdtemp(char *buf, size_t size);
/* Removes a directory tree (rm -rf). */
void tu_rmtree(const char *path);
/* Writes bytes to a file; fails the test on error. */
void tu_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file into a malloc'd buffer (NUL-terminated); returns NULL if it cannot be read. */
char *tu_read_file(const char *path, size_t *len /* OUT: may be NULL */);
/* Runs a shell command, captures stdout into a malloc'd string (may be NULL), returns the exit status. */
int tu_run(const char *cmd, char **out /* OUT: may be NULL */);
/* Nonzero when a program is on PATH. */
int tu_have_program(const char *name);

/* Compares float arrays: returns the max abs difference and writes the index of it. */
double tu_max_abs_diff(const float *a, const float *b, size_t n, size_t *where /* OUT: may be NULL */);

#endif
