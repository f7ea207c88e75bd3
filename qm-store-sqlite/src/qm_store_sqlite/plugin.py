"""Plugin module registered under the entry-point group 'quartermaster'."""
