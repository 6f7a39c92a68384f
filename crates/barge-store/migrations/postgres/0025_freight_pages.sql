-- Reading a project's Freight without reading every body or sorting it:
-- - the REST API's pages, newest first by creation second and then name (the order its
--   cursors name), walk freight_by_second;
-- - the Stage decisions' heads (name, alias, Warehouse, creation time; newest first) are all
--   in freight_heads, so the bodies are not read.
-- Numbered apart from the other tables' migrations so concurrent work cannot collide.
CREATE INDEX freight_by_second ON freight (project, (created_at / 1000), name);
CREATE INDEX freight_heads ON freight (project, created_at, name, alias, warehouse);
