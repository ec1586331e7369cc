-- The case list's usual filters, newest first: a state with a class (the centre's "all open
-- garbage cases"), a district with a state (a district centre's queue). Without them a rare
-- combination walked every case of the state and read each row to test the rest: on 5,000,000
-- bench cases, up to 2 s for one page; with them a page reads a few hundred index entries.
CREATE INDEX cases_state_class ON cases(state, class_code, id);
CREATE INDEX cases_district_state ON cases(district_code, state, id);
