-- The config repository a promotion's plan clones first (its first git-clone step's repoURL,
-- as the template spells it; '' when it names none), written when the promotion is created.
-- A replica's runner orders its claims by it (claim affinity, ARCHITECTURE.md "Replicas")
-- from this column alone, so a pass lists names and repositories and loads the plans of
-- only the promotions it claims. Promotions not finished when this migration runs get theirs
-- from their stored plan; finished ones are never claimed again.
ALTER TABLE promotions ADD COLUMN config_repo TEXT NOT NULL DEFAULT '';
UPDATE promotions SET config_repo = COALESCE((
    SELECT json_extract(s.value, '$.config.repoURL')
    FROM json_each(promotions.plan, '$.steps') AS s
    WHERE json_extract(s.value, '$.uses') = 'git-clone'
    ORDER BY s.key LIMIT 1), '')
WHERE phase IN ('Pending', 'Running') AND json_valid(plan);
