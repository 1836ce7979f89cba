-- Down step of 003: back to version 2. Study material, its passages and the stored tutor
-- answers are lost (back up first); chats live in 001's tutor_chats and stay.
DROP TABLE tutor_answers;
DROP TABLE tutor_passages;
DROP TABLE tutor_materials;
