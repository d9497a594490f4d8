-- The demo application database: the shape of a vehicle-records web app. :scale sets its size.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE vehicles (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    make        text NOT NULL,
    model       text NOT NULL,
    year        integer NOT NULL CHECK (year BETWEEN 1900 AND 2100),
    vin         text UNIQUE,
    odometer_km integer NOT NULL DEFAULT 0
);
CREATE TABLE fuel_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    filled_at   timestamptz NOT NULL,
    litres      numeric(7, 2) NOT NULL,
    price_total numeric(9, 2) NOT NULL,
    odometer_km integer NOT NULL,
    notes       text
);
CREATE TABLE maintenance_records (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    performed_at date NOT NULL,
    category    text NOT NULL,
    description text NOT NULL,
    cost        numeric(9, 2)
);
CREATE TABLE documents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    vehicle_id  bigint REFERENCES vehicles (id) ON DELETE SET NULL,
    file_name   text NOT NULL,
    storage_key text NOT NULL UNIQUE,
    size_bytes  bigint NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fuel_logs_vehicle_idx ON fuel_logs (vehicle_id, filled_at);
CREATE INDEX maintenance_vehicle_idx ON maintenance_records (vehicle_id, performed_at);

INSERT INTO users (email, name)
SELECT format('user%s@example.com', g), format('User %s', g)
FROM generate_series(1, 20 * :scale) AS g;

INSERT INTO vehicles (user_id, make, model, year, vin, odometer_km)
SELECT 1 + (g % (20 * :scale)), (ARRAY['Toyota','Ford','VW','Honda','BMW'])[1 + g % 5],
       (ARRAY['Corolla','Focus','Golf','Civic','3 Series'])[1 + g % 5], 2000 + g % 25,
       format('VIN%014s', g), (g * 7919) % 300000
FROM generate_series(1, 40 * :scale) AS g;

INSERT INTO fuel_logs (vehicle_id, filled_at, litres, price_total, odometer_km, notes)
SELECT 1 + (g % (40 * :scale)), timestamptz '2020-01-01' + g * interval '37 minutes',
       20 + (g % 400) / 10.0, 30 + (g % 900) / 10.0, g * 13 % 400000,
       CASE WHEN g % 7 = 0 THEN format('note %s: filled up at station %s', g, g % 97) END
FROM generate_series(1, 5000 * :scale) AS g;

INSERT INTO maintenance_records (vehicle_id, performed_at, category, description, cost)
SELECT 1 + (g % (40 * :scale)), date '2019-01-01' + g % 2000,
       (ARRAY['oil','tyres','brakes','inspection'])[1 + g % 4],
       format('Service item %s, workshop %s', g, g % 31), (g % 5000) / 10.0
FROM generate_series(1, 500 * :scale) AS g;
