pub mod s3fs;
