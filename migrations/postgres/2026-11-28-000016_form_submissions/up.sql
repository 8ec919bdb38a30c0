-- One row per create form submitted (issue 16): a double-click or a resent form finds
-- its token here and gets the first answer instead of a second row. The primary key
-- makes two concurrent submissions of one form meet in the index: one inserts, the
-- other waits for it and then reads its answer. Rows older than a day are pruned.
CREATE TABLE form_submissions (
    user_id BIGINT NOT NULL REFERENCES users (id),
    token TEXT NOT NULL,
    location TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, token)
);
CREATE INDEX form_submissions_created_at ON form_submissions (created_at);
