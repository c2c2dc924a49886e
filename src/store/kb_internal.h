/* kb_internal.h - shared between the files of src/store (not public). */
#ifndef MK_KB_INTERNAL_H
#define MK_KB_INTERNAL_H

#include "kb.h"

/* One edit as a JSON object (the export format), unformatted, no newline;
 * heap string, NULL when out of memory. */
char *mk_kb_edit_to_json(const mk_edit_request *e);
/* Check one request's text fields (non-empty prompt/target, lengths);
 * `where` names it in the message ("request 3"). */
int mk_kb_check_request(const mk_edit_request *r, const char *name, const char *where);

#endif
