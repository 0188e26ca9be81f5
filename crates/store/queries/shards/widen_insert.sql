-- Records that sweep $1's pair (model $2, family $3) takes rows from the pair
-- of content key $5 in sweep $4, whose family is $6.
insert into widenings (sweep_id, model_idx, family_idx, from_sweep, from_key, from_family)
values ($1, $2, $3, $4, $5, $6)
