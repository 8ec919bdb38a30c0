DROP TABLE pyc_checklist;
DROP TABLE pycs;
DROP TABLE pyc_counters;
DROP TABLE pyc_templates;
