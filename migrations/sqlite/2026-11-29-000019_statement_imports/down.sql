DROP TABLE statement_layouts;
DROP TABLE statement_imports;
