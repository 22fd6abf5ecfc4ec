-- An endpoint's rollback store is a source of its own: package versions the agent kept before
-- removing or replacing them, because no repository, cache or archive could give them back.
ALTER TABLE availability_offers
    DROP CONSTRAINT availability_offers_source_check,
    ADD CONSTRAINT availability_offers_source_check
        CHECK (source IN ('sync_repository', 'cache', 'archive', 'rollback'));
