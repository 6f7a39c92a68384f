-- The config repository a promotion's plan clones first (its first git-clone step's repoURL,
-- as the template spells it; '' when it names none), written when the promotion is created.
-- A replica's runner orders its claims by it (claim affinity, ARCHITECTURE.md "Replicas")
-- from this column alone, so a pass lists names and repositories and loads the plans of
-- only the promotions it claims. Promotions not finished when this migration runs get theirs
-- from their stored plan; finished ones are never claimed again.
ALTER TABLE promotions ADD COLUMN config_repo TEXT NOT NULL DEFAULT '';
UPDATE promotions SET config_repo = COALESCE((
    SELECT step->'config'->>'repoURL'
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(plan::jsonb->'steps') = 'array' THEN plan::jsonb->'steps' ELSE '[]'::jsonb END)
         WITH ORDINALITY AS s(step, i)
    WHERE step->>'uses' = 'git-clone'
    ORDER BY i LIMIT 1), '')
WHERE phase IN ('Pending', 'Running');
