DROP TABLE recon_mappings;
DROP TABLE reconciliations;
