DROP INDEX merchants_name_idx;
