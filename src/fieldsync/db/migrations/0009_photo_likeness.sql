-- Near-duplicate scoring compares photos by a 32×32 greyscale thumbnail (``imaging.likeness``):
-- the dHash bands stay the index that finds similar photos; the thumbprint scores what was found.
-- NULL until computed (photos stored before this migration, documents, HEIC without a decoder):
-- such a photo gives no photo evidence either way.
ALTER TABLE media ADD COLUMN thumbprint bytea
    CONSTRAINT media_thumbprint_size_check CHECK (thumbprint IS NULL OR octet_length(thumbprint) = 1024);
