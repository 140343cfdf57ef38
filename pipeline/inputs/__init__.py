"""Reading user inputs safely: files, folders, tables, archives, decoding and reasons for rejects."""
