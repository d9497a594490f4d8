-- Rows for the benchmark database, in the tables of scripts/demo_schema.sql (loaded first with
-- scale 0). Seeded pseudo-random values: as compressible as real records, and unlike the demo's
-- arithmetic patterns, never periodic (a periodic dump compresses again after gzip, which would
-- flatter the naive pipeline). :scale as in demo_schema.sql: 5000 fuel logs per unit.
SELECT setseed(0.4711);

INSERT INTO users (email, name, created_at)
SELECT format('%s.%s%s@%s', lower(first), lower(last), g,
              (ARRAY['example.com','mail.example.org','post.example.net'])[1 + floor(random() * 3)::int]),
       first || ' ' || last,
       timestamptz '2019-01-01' + random() * interval '5 years'
FROM (SELECT g,
             (ARRAY['Anna','Ben','Carla','David','Elif','Femi','Greta','Hugo','Ines','Jonas','Karin',
                    'Luca','Mara','Noah','Olga','Paul','Rosa','Sven','Tara','Umut'])[1 + floor(random() * 20)::int] AS first,
             (ARRAY['Meyer','Schmidt','Novak','Rossi','Garcia','Jensen','Kowalski','Dubois','Silva',
                    'Yilmaz','Okafor','Berg','Costa','Lund','Weber'])[1 + floor(random() * 15)::int] AS last
      FROM generate_series(1, 20 * :scale) AS g) AS u;

INSERT INTO vehicles (user_id, make, model, year, vin, odometer_km)
SELECT 1 + floor(random() * 20 * :scale)::int, m.make, m.model, 1995 + floor(random() * 30)::int,
       upper(substr(md5(g::text || random()::text), 1, 17)), floor(random() * 320000)::int
FROM generate_series(1, 40 * :scale) AS g,
     LATERAL (SELECT (ARRAY['Toyota','Ford','Volkswagen','Honda','BMW','Skoda','Renault','Kia','Mazda','Volvo'])[k] AS make,
                     (ARRAY['Corolla','Focus','Golf','Civic','320d','Octavia','Clio','Ceed','CX-5','V60'])[k] AS model
              FROM (SELECT 1 + floor(random() * 10)::int + 0 * g AS k) AS pick) AS m;

INSERT INTO fuel_logs (vehicle_id, filled_at, litres, price_total, odometer_km, notes)
SELECT vehicle, filled, litres, round(litres * (1.35 + random() * 0.75)::numeric, 2), odo,
       CASE WHEN random() < 0.25 THEN
           (ARRAY['full tank','half tank','motorway','winter tyres on','after service','long trip',
                  'city driving','roof box','towing trailer','premium fuel','cheap station',
                  'price spike'])[1 + floor(random() * 12)::int]
           || CASE WHEN random() < 0.4 THEN ', ' || (ARRAY['receipt lost','paid by card',
                  'company card','shared with Tom','tyre pressure checked','car wash'])[1 + floor(random() * 6)::int]
                   ELSE '' END
       END
FROM (SELECT 1 + floor(random() * 40 * :scale)::int AS vehicle,
             date_trunc('minute', timestamptz '2016-01-01' + random() * interval '9 years') AS filled,
             round((12 + random() * 58)::numeric, 2) AS litres,
             floor(random() * 400000)::int AS odo
      FROM generate_series(1, 5000 * :scale)) AS f;

INSERT INTO maintenance_records (vehicle_id, performed_at, category, description, cost)
SELECT 1 + floor(random() * 40 * :scale)::int, date '2014-01-01' + floor(random() * 4000)::int,
       (ARRAY['oil','tyres','brakes','inspection','battery','exhaust','suspension','bodywork'])[1 + floor(random() * 8)::int],
       (ARRAY['Replaced','Checked','Repaired','Adjusted','Cleaned','Renewed'])[1 + floor(random() * 6)::int]
       || ' ' || (ARRAY['front pads','rear discs','engine oil and filter','cabin filter','wiper blades',
                        'timing belt','coolant','spark plugs','left headlight','exhaust hanger',
                        'shock absorbers','battery terminals'])[1 + floor(random() * 12)::int]
       || ' at ' || (ARRAY['Garage Nord','AutoFix','Quick Service','Dealer','Roadside','Tyre World'])[1 + floor(random() * 6)::int]
       || CASE WHEN random() < 0.3 THEN '; invoice ' || (100000 + floor(random() * 900000)::int)::text ELSE '' END,
       round((15 + random() * 1200)::numeric, 2)
FROM generate_series(1, 500 * :scale);
