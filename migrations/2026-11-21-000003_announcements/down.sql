DROP TABLE deliveries;
DROP TABLE announcements;
