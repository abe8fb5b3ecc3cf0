SELECT count(*) || ' ' || md5(string_agg(s::text, E'\n' ORDER BY id)) || ' ' || (SELECT last_value FROM samples_id_seq) FROM samples AS s
