-- What computed each committed part: its numeric precision and the ONNX
-- Runtime version, beside the execution provider (for the report's protocol card).
alter table outputs add column precision text;
alter table outputs add column runtime text;
