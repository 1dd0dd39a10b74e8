-- Logins carry the addresses they send as (issue 23). A login whose user
-- name is an address could send as exactly that address before; it keeps
-- doing so as its primary address.
UPDATE credentials
   SET spec = json_set(spec, '$.primaryAddress', json_extract(spec, '$.userName')),
       version = version + 1
 WHERE json_extract(spec, '$.kind') = 'Login'
   AND json_extract(spec, '$.primaryAddress') IS NULL
   AND json_extract(spec, '$.userName') LIKE '_%@_%';
