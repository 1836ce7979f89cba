-- Back to version 7: no maintenance flag (a gateway of this release reads it as off).
DROP TABLE IF EXISTS maintenance;
