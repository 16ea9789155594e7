/* cmd_sql.c - 'dlp sql DB QUERY': runs SQL with the dlp SQLite extension
 * (src/sql, linked in) and prints each statement's rows as a table, CSV or
 * JSON Lines. */
#include "cli.h"

#include "../sql/sql.h"

#include <stdlib.h>
#include <string.h>

typedef enum { OUT_TABLE, OUT_CSV, OUT_JSON } out_kind;

/* A cell as text for the table and CSV: NULL -> NULL (empty), numbers as
 * SQLite prints them, blobs as hex (table: their size only). */
static char *cell_text(sqlite3_stmt *st, int i, out_kind k) {
  int t = sqlite3_column_type(st, i);
  if (t == SQLITE_NULL) return NULL;
  if (t == SQLITE_BLOB) {
    int n = sqlite3_column_bytes(st, i);
    if (k == OUT_TABLE) return sqlite3_mprintf("(blob, %d bytes)", n);
    const unsigned char *b = sqlite3_column_blob(st, i);
    char *s = sqlite3_malloc64((sqlite3_uint64)n * 2 + 1);
    if (!s) return NULL;
    for (int j = 0; j < n; j++)
      sprintf(s + 2 * j, "%02x", b[j]);
    s[2 * n] = '\0';
    return s;
  }
  if (t == SQLITE_FLOAT)
    return sqlite3_mprintf("%!.15g", sqlite3_column_double(st, i));
  return sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, i));
}

static void csv_field(const char *s) {
  if (!s) return;
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", stdout);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static int print_json_row(sqlite3_stmt *st) {
  int n = sqlite3_column_count(st);
  putchar('{');
  for (int i = 0; i < n; i++) {
    if (i) putchar(',');
    json_string(sqlite3_column_name(st, i));
    putchar(':');
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_NULL) {
      fputs("null", stdout);
    } else if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
      char *s = cell_text(st, i, OUT_JSON);
      if (!s) return -1;
      fputs(s, stdout);
      sqlite3_free(s);
    } else {
      char *s = cell_text(st, i, OUT_JSON);
      if (!s) return -1;
      json_string(s);
      sqlite3_free(s);
    }
  }
  fputs("}\n", stdout);
  return 0;
}

/* Steps one statement to its end, printing its rows. */
static int run_statement(sqlite3 *db, sqlite3_stmt *st, out_kind k) {
  int ncol = sqlite3_column_count(st);
  cli_table t;
  int have_table = 0, rc, header_done = 0;
  if (k == OUT_TABLE && ncol > 0) {
    if (cli_table_init(&t, (size_t)ncol) != 0) return cli_fail("out of memory");
    have_table = 1;
    for (int i = 0; i < ncol; i++)
      if (cli_table_column(&t, (size_t)i, sqlite3_column_name(st, i), 0) != 0) {
        cli_table_free(&t);
        return cli_fail("out of memory");
      }
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (k == OUT_JSON) {
      if (print_json_row(st) != 0) rc = SQLITE_NOMEM;
    } else if (k == OUT_CSV) {
      if (!header_done) {
        for (int i = 0; i < ncol; i++) {
          if (i) putchar(',');
          csv_field(sqlite3_column_name(st, i));
        }
        putchar('\n');
        header_done = 1;
      }
      for (int i = 0; i < ncol; i++) {
        char *s = cell_text(st, i, k);
        if (i) putchar(',');
        csv_field(s);
        sqlite3_free(s);
      }
      putchar('\n');
    } else {
      char *cells[64] = {0};
      const char *row[64];
      int n = ncol < 64 ? ncol : 64;
      for (int i = 0; i < n; i++)
        row[i] = cells[i] = cell_text(st, i, k);
      int bad = ncol > 64 || cli_table_row(&t, row) != 0;
      for (int i = 0; i < n; i++)
        sqlite3_free(cells[i]);
      if (bad) rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_NOMEM) break;
  }
  if (have_table) {
    if (rc == SQLITE_DONE && t.nrows > 0) cli_table_print(&t, stdout, 0);
    cli_table_free(&t);
  }
  if (rc == SQLITE_DONE) return CLI_EXIT_OK;
  if (rc == SQLITE_NOMEM && ncol > 64)
    return cli_fail("too many columns to print as a table (at most 64)");
  return cli_fail("%s", sqlite3_errmsg(db));
}

int cli_cmd_sql(const cli_args *a) {
  int nk = cli_flag(a, "csv") + cli_flag(a, "json") + cli_flag(a, "table");
  if (nk > 1)
    return cli_usage_error(a->cmd, "give at most one of '--csv', '--json', "
                                   "'--table'");
  out_kind k = cli_flag(a, "csv")    ? OUT_CSV
               : cli_flag(a, "json") ? OUT_JSON
                                     : OUT_TABLE;
  sqlite3 *db = NULL;
  if (sqlite3_open(a->pos[0], &db) != SQLITE_OK) {
    int rc = cli_fail("cannot open %s: %s", a->pos[0],
                      db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return rc;
  }
  char *err = NULL;
  if (dlpsql_register(db, &err) != SQLITE_OK) {
    int rc = cli_fail("%s", err ? err : "cannot load the dlp functions");
    sqlite3_free(err);
    sqlite3_close(db);
    return rc;
  }
  const char *sql = a->pos[1];
  int rc = CLI_EXIT_OK;
  while (rc == CLI_EXIT_OK && sql && *sql) {
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
      rc = cli_fail("%s", sqlite3_errmsg(db));
      break;
    }
    if (st) rc = run_statement(db, st, k); /* NULL: only a comment/space */
    sqlite3_finalize(st);
    sql = tail;
  }
  sqlite3_close(db);
  return rc;
}
