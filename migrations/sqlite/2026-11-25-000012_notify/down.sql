DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE integrations;
